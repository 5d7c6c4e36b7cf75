"""Database connections are bounded per process (Django's psycopg pool), whatever the traffic (Postgres only)."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time

import httpx
import psycopg
import pytest
from django.conf import settings
from django.db import connection

from tests.conftest import LiveGateway, make_token

REQUESTS = 300


@pytest.fixture
def pool_size() -> int:
    if connection.vendor != "postgresql":
        pytest.skip("the connection pool is for PostgreSQL (CI's second pass)")
    return settings.DATABASES["default"]["OPTIONS"]["pool"]["max_size"]


class ConnectionSampler(threading.Thread):
    """Counts the server's sessions on the test database, every 10 ms, from a connection of its own
    to another database (so it never counts itself)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        params = connection.get_connection_params()
        self.database = connection.settings_dict["NAME"]
        self.conn = psycopg.connect(**{**params, "dbname": "postgres"}, autocommit=True)
        self.peak = 0
        self.done = threading.Event()

    def count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                 [self.database]).fetchone()[0]

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, self.count())
            time.sleep(0.01)

    def stop(self) -> int:
        self.done.set()
        self.join(timeout=5)
        final = self.count()
        self.conn.close()
        return final


async def burst(gateway: LiveGateway, token: str) -> dict[str, set[int]]:
    """REQUESTS requests at once: anonymous /health and /v1/models (Django views, a thread each),
    /v1/models with a token, and hot-path calls with unknown tokens (each one a lookup). Returns
    the statuses seen for each kind of request."""
    kinds = [
        ("health", "GET", "/health", lambda: {}),
        ("models, anonymous", "GET", "/v1/models", lambda: {}),
        ("models, token", "GET", "/v1/models", lambda: {"Authorization": f"Bearer {token}"}),
        ("chat, unknown token", "POST", "/v1/chat/completions",
         lambda: {"Authorization": f"Bearer sk-gw-{secrets.token_urlsafe(16)}"}),
    ]
    statuses: dict[str, set[int]] = {}
    limits = httpx.Limits(max_connections=REQUESTS, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=gateway.url, limits=limits, timeout=60) as client:
        async def one(i: int) -> None:
            label, method, path, headers = kinds[i % len(kinds)]
            body = {"model": "x", "messages": []} if method == "POST" else None
            response = await client.request(method, path, headers=headers(), json=body)
            statuses.setdefault(label, set()).add(response.status_code)

        await asyncio.gather(*(one(i) for i in range(REQUESTS)))
    return statuses


def test_a_burst_of_requests_never_holds_more_connections_than_the_pool(live_gateway: LiveGateway,
                                                                        pool_size: int) -> None:
    token = make_token()
    sampler = ConnectionSampler()
    sampler.start()
    statuses = asyncio.run(burst(live_gateway, token))
    time.sleep(0.5)  # what a leak would leave behind
    after = sampler.stop()

    # All answered (a lost connection would have emptied the pool: 503s after its timeout).
    assert statuses == {"health": {200}, "models, anonymous": {401}, "models, token": {200},
                        "chat, unknown token": {401}}
    assert 0 < sampler.peak <= pool_size, f"{sampler.peak} connections during a burst of {REQUESTS} requests"
    assert after <= pool_size
    # Every connection went back: only this test's own, the log writer's and the one of the thread that
    # runs the request path's bounded queries (gateway/db.py) may still be lent out.
    stats = connection.pool.get_stats()
    assert stats["pool_size"] - stats["pool_available"] <= 3, stats
