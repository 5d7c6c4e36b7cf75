"""The upstream transport: the hot path answered by a MockTransport (no server), and the real
AiohttpTransport's error mapping."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import orjson
import pytest

from gateway.inference import transport
from gateway.inference.transport import (
    AiohttpTransport,
    MockResponse,
    MockTransport,
    Timeouts,
    UpstreamUnavailable,
)
from gateway.models import RequestLog
from providers.base import UpstreamRequest
from tests.conftest import UPSTREAM_KEY, LiveGateway, make_model, make_provider, make_token
from tests.openai_schema import assert_valid, assert_valid_sse

# Nothing resolves or listens here: only a MockTransport can answer.
BASE_URL = "https://api.openai.invalid/v1"

COMPLETION = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024-07-18",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi from the mock", "refusal": None},
                           "finish_reason": "stop", "logprobs": None}],
              "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}}


def sse(data: dict) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def stream_chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
    choices = [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
    return sse({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                "choices": choices, **({"usage": usage} if usage else {})})


STREAM = [stream_chunk({"role": "assistant", "content": ""}), stream_chunk({"content": "Hi "}),
          stream_chunk({"content": "there"}), stream_chunk({}, "stop"),
          stream_chunk({}, usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}), b"data: [DONE]\n\n"]


@pytest.fixture
def setup(live_gateway: LiveGateway) -> dict[str, object]:
    account = make_provider("mocked", base_url=BASE_URL)
    make_model("gpt-4o-mini", (account, "gpt-4o-mini-2024-07-18"))
    return {"gateway": live_gateway, "token": make_token()}


def post(setup: dict, body: dict) -> httpx.Response:
    return httpx.post(f"{setup['gateway'].v1}/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {setup['token']}"})


def logged(setup: dict) -> RequestLog:
    setup["gateway"].flush_logs()
    return RequestLog.objects.order_by("created_at").last()


def test_a_chat_completion_goes_through_the_pipeline_to_the_installed_transport(setup: dict) -> None:
    mock = MockTransport(lambda request: MockResponse(200, {"Content-Type": "application/json"},
                                                      orjson.dumps(COMPLETION)))
    with transport.use(mock):
        response = post(setup, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}],
                                "temperature": 0.2})
    assert response.status_code == 200
    assert_valid("CreateChatCompletionResponse", response.json())
    assert response.json()["choices"][0]["message"]["content"] == "Hi from the mock"
    [sent] = mock.requests
    assert (sent.method, sent.url) == ("POST", f"{BASE_URL}/chat/completions")
    assert sent.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert setup["token"] not in str(sent.headers)
    assert orjson.loads(sent.body) == {"model": "gpt-4o-mini-2024-07-18", "temperature": 0.2,
                                       "messages": [{"role": "user", "content": "hello"}]}
    row = logged(setup)
    assert (row.status_code, row.provider_account, row.total_tokens) == (200, "mocked", 9)


def test_a_stream_is_relayed_chunk_by_chunk_from_an_async_handler(setup: dict) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for data in STREAM:
            await asyncio.sleep(0)
            yield data

    async def handler(request: UpstreamRequest) -> MockResponse:
        return MockResponse(200, {"content-type": "text/event-stream"}, chunks())

    mock = MockTransport(handler)
    with transport.use(mock):
        response = post(setup, {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "x"}]})
    events = assert_valid_sse("CreateChatCompletionStreamResponse", response.text)
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events) == "Hi there"
    assert orjson.loads(mock.requests[0].body)["stream_options"] == {"include_usage": True}
    assert logged(setup).total_tokens == 7


@pytest.mark.parametrize(("timeout", "status", "code"), [(False, 502, "upstream_unreachable"),
                                                         (True, 504, "upstream_timeout")])
def test_an_unavailable_upstream_is_a_502_or_a_504(setup: dict, timeout: bool, status: int, code: str) -> None:
    def handler(request: UpstreamRequest) -> MockResponse:
        raise UpstreamUnavailable("The upstream did not answer.", timeout=timeout)

    with transport.use(MockTransport(handler)):
        response = post(setup, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == status and response.json()["error"]["code"] == code
    assert_valid("ErrorResponse", response.json())
    assert "'mocked'" in response.json()["error"]["message"]


def test_a_stream_that_breaks_midway_ends_with_an_error_event(setup: dict) -> None:
    def chunks() -> Iterator[bytes]:
        yield from STREAM[:2]
        raise UpstreamUnavailable("The upstream connection broke: ClientPayloadError.")

    with transport.use(MockTransport(lambda request: MockResponse(200, body=chunks()))):
        response = post(setup, {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 200 and "ClientPayloadError" in response.text
    row = logged(setup)
    assert row.status_code == 502 and row.error_type == "upstream_stream_failed"


def test_the_upstreams_headers_are_read_case_insensitively(setup: dict) -> None:
    error = {"error": {"message": "Slow down.", "type": "rate_limit_error", "code": None, "param": None}}
    with transport.use(MockTransport(lambda request: MockResponse(429, {"Retry-After": "7"}, orjson.dumps(error)))):
        response = post(setup, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 429 and response.headers["retry-after"] == "7"


def test_use_installs_a_transport_for_the_block_and_current_is_shared_per_loop() -> None:
    mock = MockTransport(lambda request: MockResponse())

    async def main() -> None:
        shared = transport.current()
        assert isinstance(shared, AiohttpTransport) and transport.current() is shared
        with transport.use(mock):
            assert transport.current() is mock
            await transport.close_client()  # the shared one only
            async with transport.one_off() as borrowed:
                assert borrowed is mock
        fresh = transport.current()
        assert fresh is not shared and isinstance(fresh, AiohttpTransport)
        await transport.close_client()

    asyncio.run(main())


def test_the_aiohttp_transport_maps_a_refused_connection_to_upstream_unavailable() -> None:
    with socket.socket() as sock:  # a port that was just free, so nothing listens on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def main() -> UpstreamUnavailable:
        async with AiohttpTransport() as upstream:
            with pytest.raises(UpstreamUnavailable) as info:
                await upstream.send(UpstreamRequest("GET", f"http://127.0.0.1:{port}/v1/models", {}), Timeouts(2, 2, 2))
        return info.value

    error = asyncio.run(main())
    assert not error.timeout and str(error) == "Could not reach the upstream: ClientConnectorError."


def test_a_pooled_connection_found_closed_is_replaced_once_not_reported_as_unreachable() -> None:
    import aiohttp

    class Answer:
        status, headers = 200, {}

    async def scenario() -> list[str]:
        transport = AiohttpTransport()
        tries: list[str] = []

        async def request(*args, **kwargs):
            tries.append("sent")
            if len(tries) == 1:
                raise aiohttp.ClientConnectionResetError("Cannot write to closing transport")
            return Answer()

        transport._session.request = request  # type: ignore[method-assign]
        try:
            response = await transport.send(UpstreamRequest("POST", "http://127.0.0.1:9/x", {}), Timeouts(1, 1, 1))
            assert response.status == 200
            return tries
        finally:
            await transport.aclose()

    assert asyncio.run(scenario()) == ["sent", "sent"]
