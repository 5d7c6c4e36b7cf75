"""Reservations are settled to the real usage whatever happens, and bursts never overrun a limit."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import httpx
import orjson

from gateway.access.limits import UNITS_PER_USD
from gateway.models import RequestLog
from tests.gateway.access.conftest import UNITS_PER_TOKEN, Limited, eventually

HELLO = [{"role": "user", "content": "hi"}]
PROMPT_ESTIMATE = 8  # what the gateway estimates for the HELLO bodies below (their strings and numbers)


def test_a_whole_answer_settles_its_reservation_to_the_real_usage(limited: Limited) -> None:
    token = limited.token(tpm=1000, budget=Decimal(1))
    response = limited.post(token, max_tokens=80)
    assert response.json()["usage"]["total_tokens"] == 3  # "hi" -> "Echo: hi"
    assert int(response.headers["x-ratelimit-remaining-tokens"]) == 1000 - PROMPT_ESTIMATE - 80
    eventually(lambda: limited.used(token, "tpm") == 3)
    assert limited.used(token, "budget") == 3 * UNITS_PER_TOKEN


def test_a_stream_settles_when_it_ends(limited: Limited) -> None:
    token = limited.token(tpm=1000, budget=Decimal(1))
    response = limited.post(token, stream=True, max_tokens=80)
    assert response.status_code == 200 and response.text.endswith("data: [DONE]\n\n")
    assert int(response.headers["x-ratelimit-remaining-tokens"]) == 1000 - PROMPT_ESTIMATE - 80
    eventually(lambda: limited.used(token, "tpm") == 3)
    assert limited.used(token, "budget") == 3 * UNITS_PER_TOKEN


def test_an_upstream_failure_releases_the_reservation_and_the_slot(limited: Limited) -> None:
    token = limited.token(tpm=1000, budget=Decimal(1), parallel=1)
    limited.upstream.fail_next(500)
    assert limited.post(token, max_tokens=80).status_code == 502
    eventually(lambda: limited.used(token, "tpm") == 0)
    assert limited.used(token, "budget") == 0
    assert limited.post(token).status_code == 200  # the slot is free again


def test_a_client_that_leaves_a_stream_settles_it_to_what_was_relayed(limited: Limited) -> None:
    token = limited.token(tpm=10_000, budget=Decimal(1), parallel=1)
    limited.upstream.event_delay = 0.2
    words = " ".join(f"w{i}" for i in range(30))
    body = {"model": "gpt-4o-mini", "stream": True, "max_tokens": 500,
            "messages": [{"role": "user", "content": words}]}
    with httpx.stream("POST", f"{limited.gateway.v1}/chat/completions", content=orjson.dumps(body),
                      headers={"Authorization": f"Bearer {token}"}) as response:
        assert next(response.iter_bytes()).startswith(b"data: ")
    # settled to an estimate of the prompt and of the few chunks relayed: far below the 500 reserved
    eventually(lambda: 0 < limited.used(token, "tpm") < 100, seconds=10)
    assert 0 < limited.used(token, "budget") < 100 * UNITS_PER_TOKEN
    limited.upstream.event_delay = 0
    eventually(lambda: limited.post(token).status_code == 200)  # and its slot is free
    limited.gateway.flush_logs()
    assert RequestLog.objects.filter(status_code=499, stream=True).count() == 1  # (a retried post that timed out is one too)


async def burst(limited: Limited, token: str, count: int, **fields: object) -> list[httpx.Response]:
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": HELLO, **fields})
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=count)) as client:
        return await asyncio.gather(*(
            client.post(f"{limited.gateway.v1}/chat/completions", content=body,
                        headers={"Authorization": f"Bearer {token}"}) for _ in range(count)))


def test_a_burst_of_thirty_against_rpm_ten_lets_exactly_ten_through(limited: Limited) -> None:
    token = limited.token(rpm=10)
    responses = asyncio.run(burst(limited, token, 30))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 10 + [429] * 20
    assert len(limited.upstream.requests) == 10


def test_a_burst_of_thirty_against_a_team_rpm_shared_by_two_tokens(limited: Limited) -> None:
    limited.team(rpm=10)
    first, second = limited.token("a", team="platform"), limited.token("b", team="platform")

    async def both() -> list[httpx.Response]:
        halves = await asyncio.gather(burst(limited, first, 15), burst(limited, second, 15))
        return halves[0] + halves[1]

    assert sum(response.status_code == 200 for response in asyncio.run(both())) == 10


def test_a_budget_burst_never_spends_more_than_the_budget(limited: Limited) -> None:
    # each request reserves 8 + 40 = 48 tokens ($0.00048) and uses 3; the budget holds 5 reservations
    budget = Decimal("0.0025")
    token = limited.token(budget=budget)
    limited.upstream.stall(0.5)  # all of them in flight together
    started = time.monotonic()
    responses = asyncio.run(burst(limited, token, 20, max_tokens=40))
    assert time.monotonic() - started < 10
    ok = [response for response in responses if response.status_code == 200]
    refused = [response for response in responses if response.status_code == 429]
    assert len(ok) == 5 and len(refused) == 15
    assert all(response.json()["error"]["code"] == "insufficient_quota" for response in refused)
    eventually(lambda: limited.used(token, "budget") == 5 * 3 * UNITS_PER_TOKEN)
    limited.gateway.flush_logs()
    spent = sum(row.cost for row in RequestLog.objects.filter(status_code=200))
    assert spent == Decimal(5 * 3 * UNITS_PER_TOKEN) / UNITS_PER_USD <= budget


def test_embeddings_reserve_their_input_only_and_settle_to_it(limited: Limited) -> None:
    token = limited.token(tpm=1000)
    response = limited.post(token, {"model": "text-embedding-3-small", "input": "one two three"}, path="embeddings")
    assert response.status_code == 200 and response.json()["usage"]["prompt_tokens"] == 3
    assert int(response.headers["x-ratelimit-remaining-tokens"]) > 1000 - 20  # no output reserved
    eventually(lambda: limited.used(token, "tpm") == 3)
