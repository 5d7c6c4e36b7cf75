"""The database away (down, or hanging) on the request path: tokens and routes a worker already knows
keep being served for GATEWAY_STALE_CACHE_SECONDS, every lookup is bounded by GATEWAY_DB_TIMEOUT_SECONDS,
and an unknown token gets a clear 503 in OpenAI's envelope. (The database is made unavailable by
patching the two request-path loads; tests/gateway/test_outages.py cuts a real PostgreSQL.)"""

from __future__ import annotations

import threading
import time

import httpx
import orjson
import pytest
from django.db import OperationalError

from gateway.access import authentication
from gateway.routing import registry as routing
from tests.conftest import make_token
from tests.openai_schema import assert_valid


def chat(setup: dict, token: str) -> httpx.Response:
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    return httpx.post(f"{setup['gateway'].v1}/chat/completions", content=body, timeout=30,
                      headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})


@pytest.fixture
def outage(openai_setup: dict, settings, monkeypatch: pytest.MonkeyPatch):
    settings.GATEWAY = {"CACHE_SECONDS": 0.1, "STALE_CACHE_SECONDS": 60.0, "DB_TIMEOUT_SECONDS": 1.0}
    assert chat(openai_setup, openai_setup["token"]).status_code == 200  # token and registry read once
    time.sleep(0.2)  # ... and no longer fresh
    release = threading.Event()

    def cut(mode: str) -> None:
        def load(*args: object) -> None:
            if mode == "hang":
                release.wait(30)
            raise OperationalError("could not connect to server: Connection refused")

        monkeypatch.setattr(authentication, "load_token", load)
        monkeypatch.setattr(routing, "load_registry", load)

    yield openai_setup, cut
    release.set()


@pytest.mark.parametrize("mode", ["down", "hang"])
def test_known_tokens_and_routes_are_served_while_the_database_is_away(outage, mode: str) -> None:
    setup, cut = outage
    unknown = make_token("created-before-the-outage-but-never-seen")
    cut(mode)
    started = time.monotonic()
    for _ in range(3):
        assert chat(setup, setup["token"]).status_code == 200
    refused = chat(setup, unknown)
    assert time.monotonic() - started < 15  # each lookup gave up after DB_TIMEOUT_SECONDS (1 s), no hang
    assert refused.status_code == 503 and refused.headers["retry-after"]
    assert refused.json()["error"]["code"] == "database_unavailable"
    assert_valid("ErrorResponse", refused.json())


def test_the_stale_copy_is_served_for_stale_cache_seconds_only(outage, settings) -> None:
    setup, cut = outage
    settings.GATEWAY = {"CACHE_SECONDS": 0.1, "STALE_CACHE_SECONDS": 0.5, "DB_TIMEOUT_SECONDS": 1.0}
    cut("down")
    time.sleep(0.6)
    expired = chat(setup, setup["token"])
    assert expired.status_code == 503 and expired.json()["error"]["code"] == "database_unavailable"
