"""Anthropic models end to end: the official OpenAI SDK -> live gateway -> a fake Anthropic Messages API."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest

from gateway.models import RequestLog
from tests.conftest import UPSTREAM_KEY, make_fake_provider, make_model, make_token
from tests.fakes.anthropic_upstream import TOOL_INPUT, TOOL_USE_ID
from tests.openai_schema import assert_valid, assert_valid_sse

MODEL = "claude-test"
UPSTREAM_MODEL = "claude-sonnet-4-20250514"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}]
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


@pytest.fixture
def setup(live_gateway, fakes: dict) -> dict:
    account = make_fake_provider("anthropic", fakes["anthropic"], "anthropic-main")
    make_model(MODEL, (account, UPSTREAM_MODEL), max_output_tokens=512)
    return {"gateway": live_gateway, "upstream": fakes["anthropic"], "account": account, "token": make_token()}


def sdk(setup: dict) -> openai.OpenAI:
    return openai.OpenAI(base_url=setup["gateway"].v1, api_key=setup["token"], max_retries=0)


def post(setup: dict, body: dict | bytes) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps({"model": MODEL, **body})
    return httpx.post(f"{setup['gateway'].v1}/chat/completions", content=content,
                      headers={"Authorization": f"Bearer {setup['token']}"}, timeout=30)


def both(setup: dict, body: dict) -> tuple[dict, list[dict]]:
    """The same request non-streamed and streamed (with usage), both validated against OpenAI's schema."""
    plain = post(setup, body)
    assert plain.status_code == 200, plain.text
    completion = plain.json()
    assert_valid("CreateChatCompletionResponse", completion)
    streamed = post(setup, {**body, "stream": True, "stream_options": {"include_usage": True}})
    assert streamed.status_code == 200 and streamed.headers["content-type"].startswith("text/event-stream")
    return completion, assert_valid_sse("CreateChatCompletionStreamResponse", streamed.text)


def assemble(chunks: list[dict]) -> dict:
    """A streamed answer put back together: text, tool calls, finish reason, usage."""
    text, calls, finish = "", {}, None
    for chunk in chunks:
        for choice in chunk["choices"]:
            delta = choice["delta"]
            text += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                entry = calls.setdefault(call["index"], {"id": "", "name": "", "arguments": ""})
                entry["id"] += call.get("id", "")
                entry["name"] += call.get("function", {}).get("name", "")
                entry["arguments"] += call.get("function", {}).get("arguments", "")
            finish = choice["finish_reason"] or finish
    return {"text": text, "calls": list(calls.values()), "finish": finish, "usage": chunks[-1].get("usage")}


def assert_same_answer(completion: dict, chunks: list[dict]) -> dict:
    streamed = assemble(chunks)
    message = completion["choices"][0]["message"]
    assert streamed["text"] == (message["content"] or "")
    assert streamed["calls"] == [{"id": c["id"], "name": c["function"]["name"], "arguments": c["function"]["arguments"]}
                                 for c in message.get("tool_calls") or []]
    assert streamed["finish"] == completion["choices"][0]["finish_reason"]
    assert streamed["usage"] == completion["usage"]
    return streamed


def logs(setup: dict) -> list[RequestLog]:
    setup["gateway"].flush_logs()
    return list(RequestLog.objects.order_by("created_at"))


def test_plain_text_through_the_sdk(setup: dict) -> None:
    completion = sdk(setup).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hello there"}],
                                                    temperature=0.2, user="alice")
    assert completion.choices[0].message.content == "Echo: hello there"
    assert completion.choices[0].finish_reason == "stop" and completion.model == MODEL
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens > 0
    upstream = setup["upstream"].last
    assert upstream.path == "/v1/messages"
    assert upstream.headers["x-api-key"] == UPSTREAM_KEY and upstream.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in upstream.headers
    assert upstream.json["model"] == UPSTREAM_MODEL and upstream.json["max_tokens"] == 512
    assert upstream.json["temperature"] == 0.2 and upstream.json["metadata"] == {"user_id": "alice"}
    row = logs(setup)[-1]
    assert (row.status_code, row.provider_kind, row.resolved_model) == (200, "anthropic", UPSTREAM_MODEL)
    assert row.total_tokens == completion.usage.total_tokens


def test_streamed_and_plain_answers_match(setup: dict) -> None:
    completion, chunks = both(setup, {"messages": [{"role": "user", "content": "count one two three"}]})
    assert assert_same_answer(completion, chunks)["text"] == "Echo: count one two three"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"] == [] and all("system_fingerprint" not in c for c in chunks)


def test_stream_without_include_usage_has_no_usage_chunk_but_logs_usage(setup: dict) -> None:
    stream = sdk(setup).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "stream me"}],
                                                stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Echo: stream me"
    assert all(c.choices and c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    row = logs(setup)[-1]
    assert row.stream and row.prompt_tokens > 0 and row.completion_tokens == 3 and row.ttft_ms is not None


def test_system_prompt_goes_to_anthropics_system_field(setup: dict) -> None:
    sdk(setup).chat.completions.create(model=MODEL, messages=[
        {"role": "system", "content": "You are terse."}, {"role": "user", "content": "hi"}])
    sent = setup["upstream"].last.json
    assert sent["system"] == "You are terse."
    assert [m["role"] for m in sent["messages"]] == ["user"]


def test_multi_turn_conversation_with_repeated_roles_is_accepted(setup: dict) -> None:
    messages = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "Echo: first"},
                {"role": "user", "content": "second"}, {"role": "user", "content": "third"}]
    completion = sdk(setup).chat.completions.create(model=MODEL, messages=messages)
    assert completion.choices[0].message.content == "Echo: second third"
    assert [m["role"] for m in setup["upstream"].last.json["messages"]] == ["user", "assistant", "user"]


def test_tools_round_trip(setup: dict) -> None:
    client = sdk(setup)
    messages = [{"role": "user", "content": "please call get_weather"}]
    reply = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, tool_choice="auto")
    choice = reply.choices[0]
    call = choice.message.tool_calls[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Calling get_weather."
    assert (call.id, call.function.name, orjson.loads(call.function.arguments)) == (TOOL_USE_ID, "get_weather", TOOL_INPUT)
    assert setup["upstream"].last.json["tools"][0]["input_schema"] == TOOLS[0]["function"]["parameters"]
    messages += [{"role": "assistant", "content": choice.message.content, "tool_calls": [call.model_dump()]},
                 {"role": "tool", "tool_call_id": call.id, "content": "22C and sunny"}]
    final = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert final.choices[0].message.content == "Tool said: 22C and sunny"
    assert final.choices[0].finish_reason == "stop"


def test_streamed_tool_call_matches_the_plain_one(setup: dict) -> None:
    completion, chunks = both(setup, {"messages": [{"role": "user", "content": "call get_weather now"}],
                                      "tools": TOOLS})
    streamed = assert_same_answer(completion, chunks)
    assert streamed["finish"] == "tool_calls" and len(streamed["calls"]) == 1
    assert streamed["calls"][0]["id"] == TOOL_USE_ID


def test_image_input_as_data_url_and_https_url(setup: dict) -> None:
    content = [{"type": "text", "text": "describe"},
               {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
               {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]
    completion = sdk(setup).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}])
    assert completion.choices[0].message.content == (
        "Echo: describe [image: base64 image/png] [image: url https://example.com/cat.jpg]")
    sources = [b["source"] for b in setup["upstream"].last.json["messages"][0]["content"] if b["type"] == "image"]
    assert sources[0] == {"type": "base64", "media_type": "image/png", "data": PIXEL}


def test_max_tokens_stop_is_length_in_both_modes(setup: dict) -> None:
    completion, chunks = both(setup, {"messages": [{"role": "user", "content": "one two three four five"}],
                                      "max_tokens": 3})
    assert completion["choices"][0]["finish_reason"] == "length"
    assert assert_same_answer(completion, chunks)["text"] == "Echo: one two"
    assert setup["upstream"].last.json["max_tokens"] == 3


def test_stop_sequence_ends_the_answer_with_stop(setup: dict) -> None:
    completion = sdk(setup).chat.completions.create(model=MODEL, stop=["three"],
                                                    messages=[{"role": "user", "content": "one two three four"}])
    assert completion.choices[0].message.content == "Echo: one two "
    assert completion.choices[0].finish_reason == "stop"
    assert setup["upstream"].last.json["stop_sequences"] == ["three"]


def test_refusal_is_a_content_filter_stop_in_both_modes(setup: dict) -> None:
    completion, chunks = both(setup, {"messages": [{"role": "user", "content": "something forbidden"}]})
    assert completion["choices"][0]["finish_reason"] == "content_filter"
    assert_same_answer(completion, chunks)


def test_parameter_anthropic_cannot_honour_is_a_400_before_any_upstream_call(setup: dict) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        sdk(setup).chat.completions.create(model=MODEL, n=2, messages=[{"role": "user", "content": "x"}])
    assert info.value.body["param"] == "n" and info.value.code == "unsupported_parameter"
    assert "Anthropic" in info.value.message
    assert_valid("ErrorResponse", info.value.response.json())
    assert setup["upstream"].requests == []


@pytest.mark.parametrize(("status", "expected", "sdk_error"), [
    (400, 400, openai.BadRequestError),
    (401, 502, openai.InternalServerError),
    (429, 429, openai.RateLimitError),
    (500, 502, openai.InternalServerError),
    (529, 503, openai.InternalServerError),
])
def test_upstream_errors_reach_the_client_as_openai_errors(setup: dict, status: int, expected: int, sdk_error) -> None:
    setup["upstream"].fail_next(status)
    with pytest.raises(sdk_error) as info:
        sdk(setup).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    response = info.value.response
    assert response.status_code == expected
    assert_valid("ErrorResponse", response.json())
    assert UPSTREAM_KEY not in response.text
    if status == 429:
        assert response.headers["retry-after"] == "7"
    if status == 529:
        assert response.json()["error"]["code"] == "upstream_overloaded"
    if status == 400:
        assert response.json()["error"]["message"] == "messages: text content blocks must be non-empty"


def test_a_malformed_upstream_body_is_a_502(setup: dict) -> None:
    setup["upstream"].fail_next_raw(200, b'{"type": "message", "content": "not blocks"', "application/json")
    response = post(setup, {"messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 502
    assert_valid("ErrorResponse", response.json())


def test_overloaded_error_mid_stream_ends_the_stream_with_an_error_event(setup: dict) -> None:
    setup["upstream"].overload_stream_after(4)
    response = post(setup, {"messages": [{"role": "user", "content": "a b c d e f"}], "stream": True})
    events = [orjson.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]
    for event in events:
        assert_valid("ErrorResponse" if "error" in event else "CreateChatCompletionStreamResponse", event)
    assert events[-1]["error"]["code"] == "upstream_overloaded"
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1]) == "Echo:"
    with pytest.raises(openai.APIError):
        setup["upstream"].overload_stream_after(2)
        list(sdk(setup).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], stream=True))
    row = logs(setup)[-1]
    assert (row.status_code, row.error_type) == (503, "upstream_overloaded")


def test_a_stream_cut_midway_ends_with_an_error_event(setup: dict) -> None:
    setup["upstream"].break_stream_after(3)
    response = post(setup, {"messages": [{"role": "user", "content": "a b c"}], "stream": True})
    assert '"error"' in response.text.splitlines()[-2] and "[DONE]" not in response.text
