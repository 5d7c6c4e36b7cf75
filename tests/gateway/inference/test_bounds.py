"""Upstream answers are bounded: size held whole, bytes per stream, and the time a non-streamed request takes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from gateway.inference import transport
from gateway.inference.transport import MockResponse, MockTransport
from gateway.models import RequestLog
from tests.conftest import LiveGateway, make_model, make_provider, make_token
from tests.gateway.inference.test_transport import BASE_URL, COMPLETION, STREAM, post


@pytest.fixture
def setup(live_gateway: LiveGateway) -> dict[str, object]:
    make_model("gpt-4o-mini", (make_provider("mocked", base_url=BASE_URL), "gpt-4o-mini-2024-07-18"))
    return {"gateway": live_gateway, "token": make_token()}


def test_an_answer_larger_than_the_bound_is_a_502_and_never_held_whole(setup: dict, settings) -> None:
    settings.GATEWAY = {"MAX_UPSTREAM_RESPONSE_BYTES": 10_000}
    chunks = [b"x" * 4096] * 100  # 400 KB, no Content-Length: the bound is counted as it arrives
    with transport.use(MockTransport(lambda request: MockResponse(200, {}, iter(chunks)))):
        response = post(setup, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_response_too_large" and "10000 bytes" in error["message"]


def test_a_declared_length_over_the_bound_is_refused_before_reading(setup: dict, settings) -> None:
    settings.GATEWAY = {"MAX_UPSTREAM_RESPONSE_BYTES": 1000}
    body = orjson.dumps(COMPLETION)
    answer = MockResponse(200, {"Content-Length": "5000000"}, body)
    with transport.use(MockTransport(lambda request: answer)):
        response = post(setup, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 502 and answer.closed


def test_a_stream_past_its_byte_bound_ends_with_an_error_event(setup: dict, settings) -> None:
    settings.GATEWAY = {"MAX_UPSTREAM_STREAM_BYTES": 400}
    endless = STREAM[:2] + [STREAM[2]] * 50
    with transport.use(MockTransport(lambda request: MockResponse(200, {"Content-Type": "text/event-stream"},
                                                                  iter(endless)))):
        response = post(setup, {"model": "gpt-4o-mini", "stream": True,
                                "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    last = [line for line in response.text.split("\n\n") if line.strip()][-1]
    assert orjson.loads(last.removeprefix("data: "))["error"]["code"] == "upstream_response_too_large"


def test_a_dripping_upstream_is_cut_at_the_request_deadline(setup: dict, settings) -> None:
    settings.GATEWAY = {"REQUEST_DEADLINE_SECONDS": 0.5}

    async def drip() -> AsyncIterator[bytes]:
        for byte in orjson.dumps(COMPLETION):
            await asyncio.sleep(0.05)  # each read is quick: only a deadline on the whole answer stops it
            yield bytes([byte])

    started = time.monotonic()
    with transport.use(MockTransport(lambda request: MockResponse(200, {}, drip()))):
        response = post(setup, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 504 and time.monotonic() - started < 3
    assert "GATEWAY_REQUEST_DEADLINE_SECONDS" in response.json()["error"]["message"]
    setup["gateway"].flush_logs()
    assert RequestLog.objects.get().status_code == 504


def test_a_huge_error_body_does_not_stop_the_next_deployment(live_gateway: LiveGateway) -> None:
    first = make_provider("first", base_url="https://first.invalid/v1")
    second = make_provider("second", base_url="https://second.invalid/v1")
    make_model("gpt-4o-mini", (first, "a"), (second, "b"))

    def answer(request):
        if "first" in request.url:
            return MockResponse(503, {}, iter([b"e" * (1 << 20)] * 3))
        return MockResponse(200, {}, orjson.dumps(COMPLETION))

    with transport.use(MockTransport(answer)):
        response = httpx.post(f"{live_gateway.v1}/chat/completions",
                              json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                              headers={"Authorization": f"Bearer {make_token()}"})
    assert response.status_code == 200
