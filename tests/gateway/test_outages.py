"""The production server (``gateway_serve``) with its PostgreSQL or Redis cut, through a TCP proxy of
the test's own (tests/fakes/tcp_proxy.py): refused and dropped (down), or hanging.

PostgreSQL and Redis only (skipped without them, a failure under --require-services). The SQLite-side
tests of the same behaviour patch the database away: tests/gateway/access/test_database_outage.py and
tests/gateway/usage/test_spool.py.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import orjson
import pytest

from gateway.models import RequestLog
from tests.conftest import make_model, make_provider, make_token
from tests.fakes.tcp_proxy import TcpProxy
from tests.gateway.access.conftest import clean_redis
from tests.servers import ServedGateway

pytestmark = pytest.mark.django_db(transaction=True)


def chat(served: ServedGateway, token: str) -> httpx.Response:
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    return httpx.post(f"{served.url}/v1/chat/completions", content=body, timeout=30,
                      headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})


def _setup(fake_openai) -> None:
    account = make_provider(base_url=fake_openai.base_url)
    make_model("gpt-4o-mini", (account, "gpt-4o-mini"))


@pytest.fixture
def postgres_proxy() -> Iterator[TcpProxy]:
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("cuts a real PostgreSQL")
    settings = connection.settings_dict
    proxy = TcpProxy(settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432)).start()
    yield proxy
    proxy.stop()


def _base_env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "GATEWAY_CACHE_SECONDS": "0.5", "GATEWAY_DB_TIMEOUT_SECONDS": "1", "GATEWAY_DB_POOL_TIMEOUT": "2",
           "GATEWAY_LOG_FLUSH_SECONDS": "0.1", "GATEWAY_GRACEFUL_TIMEOUT": "2",
           "GATEWAY_LOG_SPOOL_PATH": str(tmp_path / "spool.jsonl")}
    for name in ("DJANGO_DEBUG", "GATEWAY_LIMITS_STORE", "REDIS_URL"):
        env.pop(name, None)
    return env


@pytest.mark.parametrize("mode", ["refuse", "hang"])
def test_postgres_away_known_tokens_served_unknown_503_and_rows_kept_until_it_returns(
        postgres_proxy: TcpProxy, fake_openai, tmp_path: Path, mode: str) -> None:
    from django.db import connection

    _setup(fake_openai)
    known, unknown = make_token("known"), make_token("unseen")
    settings = connection.settings_dict
    env = {**_base_env(tmp_path),
           "DATABASE_URL": f"postgres://{settings['USER']}@127.0.0.1:{postgres_proxy.port}/{settings['NAME']}"}
    with ServedGateway(env, stop_timeout=40) as served:
        assert chat(served, known).status_code == 200
        time.sleep(0.6)  # the token and the registry are no longer fresh: the next request asks the database
        postgres_proxy.cut(mode)
        started = time.monotonic()
        answered = [chat(served, known) for _ in range(5)]
        refused = chat(served, unknown)
        assert [r.status_code for r in answered] == [200] * 5, [r.text for r in answered]
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "database_unavailable"
        assert time.monotonic() - started < 25  # bounded lookups: about 1 s each at most, no hang
        health = httpx.get(f"{served.url}/health", timeout=15)
        assert health.status_code == 503 and health.json()["database"] == "unavailable"
        output = served.stop()  # while the database is away: the rows go to the spool file
    assert "Traceback" not in output, output
    assert (tmp_path / "spool.jsonl").exists(), output
    postgres_proxy.restore()

    with ServedGateway(env, stop_timeout=40):  # the next start writes the spooled rows
        deadline = time.monotonic() + 20
        while RequestLog.objects.filter(token_name="known", status_code=200).count() < 6:
            assert time.monotonic() < deadline, list(RequestLog.objects.values_list("token_name", "status_code"))
            time.sleep(0.1)
    assert RequestLog.objects.filter(token_name="known", status_code=200).count() == 6
    assert RequestLog.objects.filter(status_code=503, error_type="database_unavailable").count() == 1
    assert not (tmp_path / "spool.jsonl").exists()


@pytest.fixture
def redis_proxy(redis_url: str) -> Iterator[tuple[TcpProxy, str]]:
    parsed = urlparse(redis_url)
    proxy = TcpProxy(parsed.hostname or "127.0.0.1", parsed.port or 6379).start()
    clean_redis(redis_url)
    yield proxy, f"redis://127.0.0.1:{proxy.port}{parsed.path or '/0'}"
    proxy.stop()
    clean_redis(redis_url)


@pytest.mark.parametrize(("failure", "cut"), [("open", "refuse"), ("open", "hang"), ("closed", "refuse")])
def test_redis_away_limits_follow_gateway_redis_failure(redis_proxy: tuple[TcpProxy, str], fake_openai,
                                                        tmp_path: Path, failure: str, cut: str) -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the server process shares the test's database: PostgreSQL")
    proxy, proxied_url = redis_proxy
    _setup(fake_openai)
    limited = make_token("limited", rpm=100)
    settings = connection.settings_dict
    env = {**_base_env(tmp_path), "REDIS_URL": proxied_url, "GATEWAY_REDIS_FAILURE": failure,
           "DATABASE_URL": f"postgres://{settings['USER']}@127.0.0.1:{settings['PORT'] or 5432}/{settings['NAME']}"}
    with ServedGateway(env, stop_timeout=40) as served:
        assert chat(served, limited).status_code == 200
        proxy.cut(cut)
        started = time.monotonic()
        statuses = [chat(served, limited) for _ in range(3)]
        assert time.monotonic() - started < 25
        if failure == "open":
            assert [r.status_code for r in statuses] == [200] * 3, [r.text for r in statuses]
        else:
            assert [r.status_code for r in statuses] == [503] * 3
            assert {r.json()["error"]["code"] for r in statuses} == {"limits_unavailable"}
        proxy.restore()
        time.sleep(0.5)
    output = served.output()  # (all of it: leaving the block stopped the server)
    assert "Traceback" not in output, output
