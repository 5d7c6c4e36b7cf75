"""Shared fixtures: a live gateway server, a fake OpenAI upstream, and registry factories."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import uvicorn

from gateway import invalidation
from gateway.models import ApiToken, Deployment, ModelEntry, ProviderAccount, Team
from gateway.routing.cooldowns import cooldowns
from gateway.usage import spool
from gateway.usage.log_writer import writer

# Rows a test process (or a server it starts) could not write at shutdown go to a spool file of the
# test run's own, never to the checkout's, where the next run's gateway would replay them.
_SPOOL = Path(tempfile.mkdtemp(prefix="gateway-test-spool-")) / "request-log-spool.jsonl"
os.environ["GATEWAY_LOG_SPOOL_PATH"] = str(_SPOOL)  # (the servers tests start inherit it)
spool.default_path = lambda: _SPOOL  # (this process read its settings already)


def forget_caches() -> None:
    """Each test has a new database: no copy of the last one's tokens and registry may serve it, not
    even as the stale copy kept for an outage."""
    from gateway import db
    from gateway.access import authentication
    from gateway.routing import registry

    invalidation.clear_local()
    authentication.forget()
    registry._holder.forget()
    db.reset_failures()

if TYPE_CHECKING:
    from tests.fakes.openai_upstream import FakeOpenAI
    from tests.fakes.server import FakeServer

UPSTREAM_KEY = "sk-Zq8vN3xK7pLm2RtY9wBc4HdJ6fGs1Ae5"  # random-looking, as real keys are


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--require-services", action="store_true",
                     help="Fail (instead of skipping) tests that need PostgreSQL and Redis when they are not configured.")
    parser.addoption("--browser", action="store_true",
                     help="Run tests/browser (Playwright driving /usr/bin/chromium; skipped without it; CI passes it)")
    parser.addoption("--fuzz", action="store_true",
                     help="Collect tests/test_fuzz.py too (schemathesis against the live gateway; minutes, so CI "
                          "runs it in a step of its own).")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The fuzz test is left out of the default run (it is not even imported) unless --fuzz is given."""
    if collection_path.name == "test_fuzz.py" and not config.getoption("--fuzz"):
        return True
    return None


@pytest.fixture
def redis_url(request: pytest.FixtureRequest) -> str:
    """REDIS_URL, or a skip (a failure under --require-services, as in CI's second pass)."""
    from django.conf import settings

    if not settings.REDIS_URL:
        if request.config.getoption("--require-services"):
            pytest.fail("--require-services: REDIS_URL must be set")
        pytest.skip("REDIS_URL is not set (CI runs this against a real Redis)")
    return settings.REDIS_URL


@pytest.fixture(scope="session", autouse=True)
def _no_stray_database_sessions(django_db_setup: None, django_db_blocker) -> Iterator[None]:
    """Threads of the live server and the log writer keep Postgres sessions open; end them before the
    test database is dropped (otherwise Postgres refuses to drop it)."""
    yield
    from django.db import connection

    if connection.vendor == "postgresql":
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    """Each test starts with empty caches and no deployment in cooldown (nor failures counted)."""
    forget_caches()
    cooldowns.clear()
    yield
    forget_caches()
    cooldowns.clear()


@dataclass
class LiveGateway:
    url: str

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    def flush_logs(self, final: bool = False) -> None:
        """Write queued request-log rows now (the writer otherwise batches them); ``final`` also
        writes the summary of the failed authentications not logged this minute, and starts a new count."""
        deadline = time.monotonic() + 5
        while True:
            writer.flush(final=final)
            if writer.pending() == 0 or time.monotonic() > deadline:
                return
            time.sleep(0.01)


@pytest.fixture(scope="session")
def _gateway_server(django_db_setup: None) -> Iterator[LiveGateway]:
    """Depends on the test database so that it stops (closing its connections) before the database goes."""
    from gateway.edge.worker import GatewayWorker
    from proxy_site.asgi import application

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # The production server's HTTP protocol (coalesced writes, disconnects told to the request).
    server = uvicorn.Server(uvicorn.Config(application, lifespan="on", log_level="warning",
                                           http=GatewayWorker.CONFIG_KWARGS["http"]))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the gateway test server did not start")
        time.sleep(0.01)
    yield LiveGateway(f"http://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def live_gateway(_gateway_server: LiveGateway, transactional_db: None) -> Iterator[LiveGateway]:
    """The real ASGI application on a real socket (uvicorn in a thread), over a clean database."""
    yield _gateway_server
    _gateway_server.flush_logs(final=True)  # and each test starts a new minute of failed authentications


@pytest.fixture(scope="session")
def _fake_servers() -> Iterator[dict[str, FakeServer]]:
    from tests.fakes.anthropic_upstream import FakeAnthropic
    from tests.fakes.cloudflare_upstream import FakeCloudflare
    from tests.fakes.gemini_upstream import FakeGemini
    from tests.fakes.openai_upstream import FakeOpenAI

    servers = {"openai": FakeOpenAI(UPSTREAM_KEY), "cloudflare": FakeCloudflare(UPSTREAM_KEY),
               "gemini": FakeGemini(UPSTREAM_KEY), "anthropic": FakeAnthropic(UPSTREAM_KEY)}
    for server in servers.values():
        server.start()
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def fakes(_fake_servers: dict[str, FakeServer]) -> Iterator[dict[str, FakeServer]]:
    """One fake upstream per provider kind (real HTTP servers on 127.0.0.1 speaking that provider's
    wire format), reset for each test."""
    for server in _fake_servers.values():
        server.reset()
    yield _fake_servers
    for server in _fake_servers.values():
        server.reset()


@pytest.fixture
def fake_openai(fakes: dict[str, FakeServer]) -> FakeOpenAI:
    """The fake OpenAI upstream."""
    return fakes["openai"]


def make_fake_provider(kind: str, fake: FakeServer, name: str | None = None, **fields: object) -> ProviderAccount:
    """A provider account of this kind pointing at its fake (Cloudflare's with the fake's account id)."""
    if kind == "cloudflare":
        fields.setdefault("options", {"account_id": fake.account_id})
    return make_provider(name or f"{kind}-fake", kind=kind, base_url=fake.base_url, **fields)


def make_provider(name: str = "openai-main", kind: str = "openai", base_url: str = "", api_key: str = UPSTREAM_KEY,
                  **fields: object) -> ProviderAccount:
    account = ProviderAccount(name=name, kind=kind, base_url=base_url, **fields)
    account.set_api_key(api_key)
    account.save()
    return account


def make_model(name: str, *deployments: tuple[ProviderAccount, str], **fields: object) -> ModelEntry:
    entry = ModelEntry.objects.create(name=name, **fields)
    for priority, (account, upstream_model) in enumerate(deployments):
        Deployment.objects.create(model=entry, provider=account, upstream_model=upstream_model, priority=priority)
    return entry


def make_token(name: str = "test", team: str | None = None, **fields: object) -> str:
    """Create a token; returns its raw value."""
    token = ApiToken(name=name, team=Team.objects.get_or_create(name=team)[0] if team else None, **fields)
    raw = token.set_new_secret()
    token.save()
    return raw


@pytest.fixture
def openai_setup(live_gateway: LiveGateway, fake_openai: FakeOpenAI) -> dict[str, object]:
    """A gateway with one OpenAI provider (the fake), the model gpt-4o-mini and a token."""
    account = make_provider(base_url=fake_openai.base_url)
    make_model("gpt-4o-mini", (account, "gpt-4o-mini"), input_price_per_million="0.15",
               output_price_per_million="0.60", context_window=128000)
    return {"gateway": live_gateway, "upstream": fake_openai, "account": account, "token": make_token()}
