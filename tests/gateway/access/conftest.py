"""Fixtures for the limit tests: a live gateway over each limit store, and reading the counters it keeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import openai
import orjson
import pytest

from gateway import crypto
from gateway.access import authentication, limits, stores
from gateway.access.limits import Need
from gateway.access.redis_store import RedisStore
from gateway.models import RequestLog, Team
from gateway.usage import log_writer
from tests.conftest import LiveGateway, make_model, make_provider, make_token
from tests.fakes.openai_upstream import FakeOpenAI

# $10 per million tokens either way: a token costs 1,000 units of 1e-8 USD.
PRICE = "10"
UNITS_PER_TOKEN = 1_000


def clean_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    for key in client.scan_iter("gw:lim:*"):
        client.delete(key)
    client.close()


@pytest.fixture(params=["database", "redis"])
def store_name(request: pytest.FixtureRequest, settings) -> Iterator[str]:
    """Each test runs against the database store and against Redis (skipped without REDIS_URL)."""
    url = request.getfixturevalue("redis_url") if request.param == "redis" else ""
    if url:
        clean_redis(url)
    settings.GATEWAY = {"LIMITS_STORE": request.param}
    yield request.param
    if url:
        clean_redis(url)


@dataclass
class Limited:
    gateway: LiveGateway
    upstream: FakeOpenAI
    store: str

    def token(self, name: str = "ci", team: str | None = None, **fields: object) -> str:
        return make_token(name, team, **fields)

    def team(self, name: str = "platform", **fields: object) -> Team:
        return Team.objects.create(name=name, **fields)

    def sdk(self, token: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.gateway.v1, api_key=token, max_retries=0)

    def post(self, token: str, body: dict | None = None, path: str = "chat/completions", **fields: object) -> httpx.Response:
        body = body or {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **fields}
        return httpx.post(f"{self.gateway.v1}/{path}", content=orjson.dumps(body),
                          headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def used(self, token: str, kind: str, owner: str = "token", now: float | None = None) -> int:
        """What the store holds now for the token's (or its team's) counter of this kind."""
        info = authentication.load_token(crypto.token_digest(token))
        held = [found for found in info.limits if found.owner == owner]
        found = limits.counters(held, Need(0, slot=False), now or time.time(), 0.0, kinds=(kind,))
        store = stores.current()

        async def peek() -> list[int]:
            try:
                return await store.peek(found, now or time.time())
            finally:
                if isinstance(store, RedisStore | stores.RedisOrMemory):
                    await store.close()

        return asyncio.run(peek())[0]


def logged(cost: str, created_at: datetime | None = None, **fields: object) -> None:
    """An earlier request's row as the log writer writes it: the raw row and its daily sums (what a
    budget starts from), together."""
    row = {field.attname: field.get_default() for field in RequestLog._meta.concrete_fields if not field.primary_key}
    row.update(created_at=created_at or datetime.now(UTC), request_id="earlier", endpoint="chat.completions",
               status_code=200, cost=Decimal(cost), **fields)
    log_writer._write([row])


def eventually(check: Callable[[], bool], seconds: float = 5.0) -> None:
    """Settlement runs after the answer, in the gateway's own time: wait for it."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not become true in time")
        time.sleep(0.02)


@pytest.fixture
def limited(live_gateway: LiveGateway, fake_openai: FakeOpenAI, store_name: str) -> Limited:
    """The live gateway with the fake OpenAI upstream behind gpt-4o-mini (priced, max 100 output tokens)."""
    account = make_provider(base_url=fake_openai.base_url)
    make_model("gpt-4o-mini", (account, "gpt-4o-mini"), input_price_per_million=PRICE,
               output_price_per_million=PRICE, max_output_tokens=100)
    make_model("free-model", (account, "a-local-model-nobody-prices"))  # in neither the entry nor the price list
    make_model("text-embedding-3-small", (account, "text-embedding-3-small"), input_price_per_million=PRICE)
    return Limited(live_gateway, fake_openai, store_name)
