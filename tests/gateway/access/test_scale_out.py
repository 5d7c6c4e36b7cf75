"""Two gateway instances (``gateway_serve``, two workers each) over one PostgreSQL and one Redis: an
rpm limit and a budget hold exactly for requests spread over both at once.

PostgreSQL and Redis only (skipped without them, a failure under --require-services): the servers are
separate processes that must share the test's own database and the Redis the limits are kept in.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import orjson
import pytest

from gateway.models import ApiToken, RequestLog
from tests.conftest import make_model, make_provider, make_token
from tests.gateway.access.conftest import clean_redis
from tests.servers import ServedGateway

REQUESTS = 40
RPM = 12
# $1 per million tokens either way, at most 20 output tokens: "hi" reserves its prompt estimate plus 20
# tokens (a few 1e-5 USD) and costs less once answered, so this budget lets some requests through only.
BUDGET = Decimal("0.0001")


@pytest.fixture
def two_gateways(transactional_db: None, redis_url: str, fake_openai) -> Iterator[list[str]]:
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("two instances need a database both can share: PostgreSQL")
    clean_redis(redis_url)  # token ids restart with each test database; old counters must not count
    account = make_provider(base_url=fake_openai.base_url)
    make_model("gpt-4o-mini", (account, "gpt-4o-mini"), input_price_per_million="1",
               output_price_per_million="1", max_output_tokens=20)
    env = {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
           "REDIS_URL": redis_url, "GATEWAY_LOG_FLUSH_SECONDS": "0.2", "GATEWAY_CACHE_SECONDS": "1"}
    for name in ("DJANGO_DEBUG", "GATEWAY_LIMITS_STORE"):
        env.pop(name, None)
    started = [ServedGateway(env, workers=2).launch() for _ in range(2)]  # both start (and migrate) at once
    try:
        for served in started:
            served.wait_healthy()
        yield [served.url for served in started]
    finally:
        for served in started:
            served.stop(check=False)  # (killed if need be: each is stopped, and Redis cleaned, whatever happens)
        clean_redis(redis_url)


def _burst(urls: list[str], token: str) -> list[httpx.Response]:
    """REQUESTS chat completions at once, alternating between the instances."""
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    clients = [httpx.Client(base_url=url, timeout=30, limits=httpx.Limits(max_connections=REQUESTS))
               for url in urls]
    try:
        # Warm one connection per client first, so the burst is not spent in connecting.
        for client in clients:
            assert client.get("/health").status_code == 200
        with ThreadPoolExecutor(REQUESTS) as pool:
            return list(pool.map(lambda i: clients[i % len(clients)].post("/v1/chat/completions", content=body,
                                                                          headers=headers), range(REQUESTS)))
    finally:
        for client in clients:
            client.close()


def _codes(responses: list[httpx.Response]) -> list[str]:
    return [r.json()["error"]["code"] for r in responses if r.status_code != 200]


def _eventually(check, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the condition did not become true in time"
        time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
def test_rpm_and_budget_hold_exactly_across_two_instances(two_gateways: list[str], redis_url: str) -> None:
    import redis

    # Burst 1: rpm windows are calendar minutes; keep the burst inside one.
    if time.time() % 60 >= 50:
        time.sleep(60 - time.time() % 60 + 0.1)
    responses = _burst(two_gateways, make_token("rpm", rpm=RPM))
    assert sum(r.status_code == 200 for r in responses) == RPM
    assert all(r.status_code in (200, 429) for r in responses), [r.text for r in responses]
    assert set(_codes(responses)) == {"rate_limit_exceeded"}

    # Burst 2: a budget over both instances.
    raw = make_token("budget", budget=BUDGET, budget_period="total")
    token = ApiToken.objects.get(name="budget")
    responses = _burst(two_gateways, raw)
    answered = sum(r.status_code == 200 for r in responses)
    assert all(r.status_code in (200, 429) for r in responses), [r.text for r in responses]
    assert answered >= 1
    assert "insufficient_quota" in _codes(responses)
    assert set(_codes(responses)) == {"insufficient_quota"}

    rows = RequestLog.objects.filter(token=token)
    # Every request is logged, refused ones too (at no cost), after the answer: wait for the rows.
    _eventually(lambda: rows.count() == REQUESTS)
    assert rows.filter(status_code=200).count() == answered
    logged = sum((row.cost for row in rows), Decimal(0))
    assert Decimal(0) < logged <= BUDGET

    # The spend the instances keep in Redis (gw:lim:tok:<id>:budget:total:..., 1e-8 USD): reservations
    # are settled to the cost after the answer, so once settled it is exactly what the log holds.
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(f"gw:lim:tok:{token.id}:budget:*"))
        assert len(keys) == 1, keys

        def spent() -> int:
            return int(client.get(keys[0]))

        _eventually(lambda: spent() == int(logged * 10**8))
    finally:
        client.close()
