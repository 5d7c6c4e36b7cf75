"""Regression tests for what fuzzing found (tests/test_fuzz.py against the live gateway, and the
adapter properties of tests/providers/test_properties.py): one per bug, with the request that
shows it. Those not fixed yet are xfail(strict): they fail once the bug is fixed, and then the
mark (and the bug's entry in tests/test_fuzz.py's ``known_bug``) goes.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

ERROR_FIELDS = {"message", "type", "param", "code"}


def assert_envelope(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json"), response.headers["content-type"]
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_FIELDS, body
    return body["error"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "TRACE"])
def test_health_answers_another_method_with_a_405_in_the_error_envelope(live_gateway: Any, method: str) -> None:
    response = httpx.request(method, f"{live_gateway.url}/health")
    assert response.status_code == 405
    assert assert_envelope(response)["code"] == "method_not_allowed"
    assert "GET" in response.headers["allow"]


def test_an_upstream_answer_with_unreadable_usage_is_a_502(openai_setup: dict[str, Any]) -> None:
    gateway, upstream, token = openai_setup["gateway"], openai_setup["upstream"], openai_setup["token"]
    upstream.fail_next_raw(200, orjson.dumps({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": "many", "completion_tokens": 1, "total_tokens": 2}}))
    response = httpx.post(f"{gateway.v1}/chat/completions", headers={"Authorization": f"Bearer {token}"},
                          json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}, timeout=10)
    assert response.status_code == 502, (response.status_code, response.text)
    assert assert_envelope(response)["type"] == "upstream_error"


def test_an_upstream_stream_with_unreadable_usage_ends_with_an_error_event(openai_setup: dict[str, Any]) -> None:
    gateway, upstream, token = openai_setup["gateway"], openai_setup["upstream"], openai_setup["token"]
    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
    stream = b"".join(b"data: " + orjson.dumps(event) + b"\n\n" for event in (
        {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": None}]},
        {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**chunk, "choices": [], "usage": {"prompt_tokens": [1], "completion_tokens": 1, "total_tokens": 2}},
    )) + b"data: [DONE]\n\n"
    upstream.fail_next_raw(200, stream, "text/event-stream")
    with httpx.stream("POST", f"{gateway.v1}/chat/completions", headers={"Authorization": f"Bearer {token}"},
                      json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "stream": True,
                            "stream_options": {"include_usage": True}}, timeout=10) as response:
        try:
            body = b"".join(response.iter_bytes())
        except httpx.RemoteProtocolError:  # today: the translator's ValueError ends the connection mid-body
            pytest.fail("the gateway cut the stream without an error event")
    assert response.status_code == 200, (response.status_code, body)
    last = orjson.loads([e for e in body.split(b"\n\n") if e.strip()][-1].removeprefix(b"data: "))
    assert set(last) == {"error"} and last["error"]["type"] == "upstream_error", body
