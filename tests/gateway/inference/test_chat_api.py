"""/v1/chat/completions end to end: the official OpenAI SDK against a live gateway and a fake upstream."""

from __future__ import annotations

import time

import httpx
import openai
import orjson
import pytest

from gateway.models import RequestLog
from tests.conftest import UPSTREAM_KEY, make_model, make_provider, make_token
from tests.fakes.openai_upstream import FakeOpenAI
from tests.openai_schema import assert_valid, assert_valid_sse

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}]


def sdk(setup: dict, token: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=setup["gateway"].v1, api_key=token or setup["token"], max_retries=0)


def post(setup: dict, body: dict | bytes, headers: dict | None = None, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {setup['token']}", **(headers or {})}
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(f"{setup['gateway'].v1}/chat/completions", content=content, headers=headers, **kwargs)


def logs(setup: dict) -> list[RequestLog]:
    setup["gateway"].flush_logs()
    return list(RequestLog.objects.order_by("created_at"))


def test_chat_completion_through_the_sdk(openai_setup: dict) -> None:
    completion = sdk(openai_setup).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello there"}], temperature=0.2, seed=7
    )
    assert completion.choices[0].message.content == "Echo: hello there"
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    upstream = openai_setup["upstream"].last
    assert upstream.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert openai_setup["token"] not in str(upstream.headers)
    assert upstream.json["temperature"] == 0.2 and upstream.json["seed"] == 7


def test_raw_response_validates_against_openais_schema(openai_setup: dict) -> None:
    response = post(openai_setup, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200 and response.headers["x-request-id"].startswith("req_")
    assert_valid("CreateChatCompletionResponse", response.json())


def test_stream_without_include_usage_hides_the_usage_chunk_the_gateway_asked_for(openai_setup: dict) -> None:
    response = post(openai_setup, {"model": "gpt-4o-mini", "stream": True,
                                   "messages": [{"role": "user", "content": "count one two three"}]})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = assert_valid_sse("CreateChatCompletionStreamResponse", response.text)
    assert all(e["choices"] for e in events)
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events) == "Echo: count one two three"
    assert openai_setup["upstream"].last.json["stream_options"] == {"include_usage": True}
    row = logs(openai_setup)[-1]
    assert row.stream and row.completion_tokens > 0 and row.ttft_ms is not None


def test_stream_with_include_usage_through_the_sdk(openai_setup: dict) -> None:
    stream = sdk(openai_setup).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "stream me"}], stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: stream me"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert_valid_sse("CreateChatCompletionStreamResponse", post(openai_setup, {
        "model": "gpt-4o-mini", "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "x"}]}).text)


def test_tool_calls_stream_and_round_trip(openai_setup: dict) -> None:
    client = sdk(openai_setup)
    messages = [{"role": "user", "content": "please call get_weather"}]
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
    call = reply.choices[0].message.tool_calls[0]
    assert reply.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    streamed = post(openai_setup, {"model": "gpt-4o-mini", "stream": True, "messages": messages, "tools": TOOLS})
    events = assert_valid_sse("CreateChatCompletionStreamResponse", streamed.text)
    arguments = "".join(tc["function"].get("arguments", "") for e in events for tc in e["choices"][0]["delta"].get("tool_calls") or [])
    assert orjson.loads(arguments) == orjson.loads(call.function.arguments)
    messages += [{"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                 {"role": "tool", "tool_call_id": call.id, "content": "22C"}]
    final = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
    assert final.choices[0].message.content == "Tool said: 22C"


def test_models_list_shows_what_the_token_may_use(openai_setup: dict) -> None:
    account = openai_setup["account"]
    make_model("gpt-4o", (account, "gpt-4o"))
    make_model("gpt-*", (account, ""))
    assert sorted(m.id for m in sdk(openai_setup).models.list()) == ["gpt-4o", "gpt-4o-mini"]
    narrow = make_token("narrow", allowed_models="gpt-4o-mini")
    assert [m.id for m in sdk(openai_setup, narrow).models.list()] == ["gpt-4o-mini"]
    assert sdk(openai_setup).models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    assert sdk(openai_setup).models.retrieve("gpt-5-preview").id == "gpt-5-preview"  # served by gpt-*
    with pytest.raises(openai.NotFoundError):
        sdk(openai_setup, narrow).models.retrieve("gpt-4o")
    listing = httpx.get(f"{openai_setup['gateway'].v1}/models", headers={"X-AUTH-TOKEN": openai_setup["token"]})
    assert_valid("ListModelsResponse", listing.json())


@pytest.mark.parametrize("token", ["sk-gw-wrong", ""])
def test_bad_or_missing_token_raises_authentication_error(openai_setup: dict, token: str) -> None:
    client = openai.OpenAI(base_url=openai_setup["gateway"].v1, api_key=token or "x", max_retries=0,
                           default_headers={"Authorization": ""} if not token else None)
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert_valid("ErrorResponse", info.value.response.json())
    assert openai_setup["upstream"].requests == []


def test_token_forms_from_the_seed_readme(openai_setup: dict) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello, how are you?"}], "temperature": 0.7}
    url = f"{openai_setup['gateway'].v1}/chat/completions"
    by_header = httpx.post(url, json=body, headers={"X-AUTH-TOKEN": openai_setup["token"]})
    by_query = httpx.post(url, json=body, params={"auth_token": openai_setup["token"]})
    assert by_header.status_code == by_query.status_code == 200
    assert by_header.json()["choices"][0]["message"]["content"] == "Echo: Hello, how are you?"


@pytest.mark.parametrize(("body", "param"), [
    (b"{not json", None),
    ({"model": "gpt-4o-mini"}, "messages"),
    ({"model": "gpt-4o-mini", "messages": "hi"}, "messages"),
    ({"model": "gpt-4o-mini", "messages": []}, "messages"),
    ({"model": 42, "messages": [{"role": "user", "content": "hi"}]}, "model"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
    ({"model": "gpt-4o-mini", "messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"}, "stream"),
    ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream_options": {}}, "stream_options"),
])
def test_bad_requests_get_400_with_param_and_never_reach_the_upstream(openai_setup: dict, body, param) -> None:
    response = post(openai_setup, body)
    assert response.status_code == 400
    assert_valid("ErrorResponse", response.json())
    assert response.json()["error"]["param"] == param
    assert openai_setup["upstream"].requests == []


def test_sdk_raises_bad_request_error(openai_setup: dict) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        sdk(openai_setup).chat.completions.create(model="gpt-4o-mini", messages=[])
    assert info.value.body["param"] == "messages"


def test_unknown_model_is_404_and_forbidden_model_is_403(openai_setup: dict) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        sdk(openai_setup).chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "model_not_found"
    narrow = make_token("narrow", allowed_models="gpt-4o")
    with pytest.raises(openai.PermissionDeniedError):
        sdk(openai_setup, narrow).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])


def test_upstream_rate_limit_reaches_the_client_as_429_with_retry_after(openai_setup: dict) -> None:
    openai_setup["upstream"].fail_next(429)
    response = post(openai_setup, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 429 and response.headers["retry-after"] == "1"
    assert_valid("ErrorResponse", response.json())


def test_rejected_provider_key_is_502_without_the_key(openai_setup: dict, fake_openai) -> None:
    bad = make_provider("bad-key", base_url=fake_openai.base_url, api_key="sk-wrong-key-abcdef123456")
    make_model("gpt-bad", (bad, "gpt-4o-mini"))
    response = post(openai_setup, {"model": "gpt-bad", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 502
    assert "sk-wrong" not in response.text and "3456" not in response.text
    assert_valid("ErrorResponse", response.json())


@pytest.mark.parametrize(("status", "raw", "expected"), [
    (500, None, 502), (503, None, 503), (400, None, 400), (200, b"<html>gateway timeout</html>", 502),
])
def test_upstream_failures_are_mapped_to_openai_errors(openai_setup: dict, status, raw, expected) -> None:
    if raw is None:
        openai_setup["upstream"].fail_next(status)
    else:
        openai_setup["upstream"].fail_next_raw(status, raw, "text/html")
    response = post(openai_setup, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == expected
    assert_valid("ErrorResponse", response.json())
    assert "<html>" not in response.text and "Traceback" not in response.text


def test_a_failing_deployment_falls_back_to_the_next_before_the_client_sees_anything(openai_setup: dict, fake_openai) -> None:
    primary = make_provider("primary", base_url="http://127.0.0.1:9/v1")  # nothing listens on port 9
    backup = make_provider("backup", base_url=fake_openai.base_url)
    make_model("resilient", (primary, "gpt-4o-mini"), (backup, "gpt-4o-mini"))
    response = post(openai_setup, {"model": "resilient", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 200
    row = logs(openai_setup)[-1]
    assert row.attempts == 2 and row.provider_account == "backup"


def test_a_stream_broken_midway_ends_with_an_error_event(openai_setup: dict) -> None:
    openai_setup["upstream"].break_stream_after(2)
    with pytest.raises(openai.APIError):
        list(sdk(openai_setup).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "a b c d e f"}], stream=True))
    row = logs(openai_setup)[-1]
    assert row.status_code == 502 and row.error_type == "upstream_stream_failed"


def test_every_request_is_logged_with_usage_cost_and_no_text(openai_setup: dict) -> None:
    client = sdk(openai_setup)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "secret words"}],
                                   extra_headers={"X-SESSION-ID": "sess-42"})
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    ok, missing = logs(openai_setup)
    assert (ok.status_code, ok.requested_model, ok.provider_account, ok.session_id) == (200, "gpt-4o-mini", "openai-main", "sess-42")
    assert ok.prompt_tokens > 0 and ok.cost > 0 and ok.token_name == "test"
    assert "secret words" not in (ok.request_body + ok.response_body)
    assert (missing.status_code, missing.error_type) == (404, "model_not_found")


def test_request_body_over_the_limit_is_413(openai_setup: dict, settings) -> None:
    settings.GATEWAY = {"MAX_BODY_BYTES": 1000}
    response = post(openai_setup, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 2000}]})
    assert response.status_code == 413
    assert_valid("ErrorResponse", response.json())


def test_a_provider_without_a_key_is_skipped_and_reported_not_sent(openai_setup: dict, fake_openai) -> None:
    keyless = make_provider("keyless", base_url=fake_openai.base_url, api_key="")
    make_model("unconfigured", (keyless, "gpt-4o-mini"))
    response = post(openai_setup, {"model": "unconfigured", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 503 and response.json()["error"]["code"] == "provider_not_configured"
    assert fake_openai.requests == []
    make_model("half-configured", (keyless, "gpt-4o-mini"), (openai_setup["account"], "gpt-4o-mini"))
    assert post(openai_setup, {"model": "half-configured", "messages": [{"role": "user", "content": "x"}]}).status_code == 200


@pytest.mark.parametrize("stream", [False, True])
def test_usage_is_estimated_with_the_tokenizer_when_the_upstream_reports_none(openai_setup: dict, stream: bool) -> None:
    openai_setup["upstream"].without_usage = True
    response = post(openai_setup, {"model": "gpt-4o-mini", "stream": stream,
                                   "messages": [{"role": "user", "content": "hello world"}]})
    assert response.status_code == 200
    deadline = time.monotonic() + 10  # the row is queued once the estimate is done (first use loads the encoding)
    while not logs(openai_setup) and time.monotonic() < deadline:
        time.sleep(0.05)
    row = logs(openai_setup)[-1]
    # o200k_base (cookbook rule): 3 per message + "user" 1 + "hello world" 2 + 3 reply priming; "Echo: hello world" is 4.
    assert (row.prompt_tokens, row.completion_tokens, row.usage_estimated) == (9, 4, True)
    assert row.cost > 0


def test_session_id_comes_from_the_cookie_too_and_is_length_limited(openai_setup: dict) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
    post(openai_setup, body, {"Cookie": "theme=dark; session_id=cookie-sess-7"})
    post(openai_setup, body, {"X-SESSION-ID": "s" * 500})
    first, second = logs(openai_setup)
    assert first.session_id == "cookie-sess-7" and second.session_id == "s" * 128


def test_wrong_methods_and_unknown_api_paths_get_openai_errors(openai_setup: dict) -> None:
    base = openai_setup["gateway"]
    wrong = httpx.get(f"{base.v1}/chat/completions")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert_valid("ErrorResponse", wrong.json())
    for response in (httpx.get(f"{base.v1}/no-such-endpoint"), httpx.get(f"{base.v1}/models/a%0Ab",
                                                                          headers={"X-AUTH-TOKEN": openai_setup["token"]})):
        assert response.status_code == 404 and response.headers["content-type"] == "application/json"
        assert_valid("ErrorResponse", response.json())
    assert httpx.request("TRACE", f"{base.url}/health").status_code == 405


def test_a_hung_upstream_times_out_as_504_and_the_next_deployment_answers(openai_setup: dict, fake_openai) -> None:
    slow = make_provider("slow", base_url=fake_openai.base_url, first_byte_timeout=0.3)
    make_model("hangs", (slow, "gpt-4o-mini"))
    fake_openai.stall(1.5)
    response = post(openai_setup, {"model": "hangs", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 504 and response.json()["error"]["code"] == "upstream_timeout"
    assert_valid("ErrorResponse", response.json())
    fake_openai.stall(0)
    second = FakeOpenAI(UPSTREAM_KEY)  # a healthy upstream behind the hung one
    second.start()
    try:
        slow_primary = make_provider("slow-primary", base_url=fake_openai.base_url, first_byte_timeout=0.3)
        healthy = make_provider("healthy", base_url=second.base_url)
        make_model("hangs-then-works", (slow_primary, "gpt-4o-mini"), (healthy, "gpt-4o-mini"))
        fake_openai.stall(1.5)
        response = post(openai_setup, {"model": "hangs-then-works", "messages": [{"role": "user", "content": "x"}]})
        assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "Echo: x"
    finally:
        fake_openai.stall(0)
        second.stop()


def test_a_client_that_leaves_mid_stream_is_logged_as_499(openai_setup: dict) -> None:
    openai_setup["upstream"].event_delay = 0.2
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "a b c d e f g h"}]}
    with httpx.stream("POST", f"{openai_setup['gateway'].v1}/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {openai_setup['token']}"}) as response:
        assert next(response.iter_bytes()).startswith(b"data: ")
    deadline = time.monotonic() + 10  # the gateway notices when its next write fails
    while not logs(openai_setup) and time.monotonic() < deadline:
        time.sleep(0.05)
    row = logs(openai_setup)[-1]
    assert (row.status_code, row.error_type, row.stream) == (499, "client_closed", True)


def test_a_client_that_leaves_during_a_long_upstream_pause_is_noticed_at_once(openai_setup: dict) -> None:
    openai_setup["upstream"].event_delay = 3  # a model that thinks for a while between chunks
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "a b c"}]}
    with httpx.stream("POST", f"{openai_setup['gateway'].v1}/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {openai_setup['token']}"}) as response:
        next(response.iter_bytes())
        left = time.monotonic()
    while not logs(openai_setup) and time.monotonic() < left + 10:
        time.sleep(0.05)
    assert time.monotonic() - left < 2, "the gateway waited for the upstream's next chunk"
    assert logs(openai_setup)[-1].status_code == 499
