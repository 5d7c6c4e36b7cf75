"""The Anthropic adapter without a server: request mapping, answers, recorded streams, errors."""

from __future__ import annotations

import orjson
import pytest

from gateway.errors import render
from providers.anthropic.adapter import AnthropicAdapter
from providers.anthropic.response import AnthropicStream
from providers.base import Account, ProviderError
from tests.openai_schema import assert_valid, assert_valid_sse

KEY = "sk-ant-api03-verysecretkey1234567890abcd"

# A recorded text stream (anthropic-sdk-python fixtures).
RECORDED = b"""event: message_start
data: {"type":"message_start","message":{"id":"msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK","type":"message","role":"assistant","content":[],"model":"claude-3-opus-latest","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":11,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":6}}

event: message_stop
data: {"type":"message_stop"}

"""

# Tool-use events from the same fixtures, in a whole stream: a text block first, so the tool is block 1 but call 0.
TOOL_STREAM = b"""event: message_start
data: {"type":"message_start","message":{"id":"msg_01Tool","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-20250514","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2,"cache_read_input_tokens":100}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me check."}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01NRLabsLyVHZPKxbKvkfSMn","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\\"locati"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"on\\": \\"Paris\\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":40}}

event: message_delta
data: {"type":"message_delta","delta":{},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

"""

OVERLOADED = (b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n')


def adapter(base_url: str = "", **options: object) -> AnthropicAdapter:
    return AnthropicAdapter(Account("claude", "anthropic", base_url, KEY, dict(options)))


def sent(body: dict, max_output_tokens: int | None = None, **options: object) -> dict:
    return orjson.loads(adapter(**options).chat_request(body, "claude-sonnet-4-20250514", max_output_tokens).body)


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def run_stream(translator: AnthropicStream, data: bytes, piece: int) -> bytes:
    out = b"".join(translator.feed(data[i : i + piece]) for i in range(0, len(data), piece))
    return out + translator.close()


def chunks(out: bytes) -> list[dict]:
    return assert_valid_sse("CreateChatCompletionStreamResponse", out.decode())


# -- requests --------------------------------------------------------------------------------------

def test_request_goes_to_messages_with_anthropic_headers_and_the_accounts_base_url() -> None:
    request = adapter().chat_request({"messages": [user("hi")]}, "claude-x")
    assert (request.method, request.url) == ("POST", "https://api.anthropic.com/v1/messages")
    assert request.headers == {"x-api-key": KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"}
    custom = adapter("http://127.0.0.1:9/v1/", anthropic_version="2024-01-01", anthropic_beta="tools-2024")
    request = custom.chat_request({"messages": [user("hi")]}, "claude-x")
    assert request.url == "http://127.0.0.1:9/v1/messages"
    assert request.headers["anthropic-version"] == "2024-01-01" and request.headers["anthropic-beta"] == "tools-2024"
    assert "Authorization" not in request.headers
    models = custom.models_request()
    assert (models.method, models.url, models.headers["x-api-key"]) == ("GET", "http://127.0.0.1:9/v1/models", KEY)


def test_system_and_developer_messages_become_the_system_prompt() -> None:
    body = sent({"messages": [{"role": "system", "content": "Be brief."}, user("hi"),
                              {"role": "developer", "content": [{"type": "text", "text": "Use French."}]}]})
    assert body["system"] == "Be brief.\n\nUse French."
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert "system" not in sent({"messages": [user("hi")]})


def test_max_tokens_is_the_clients_else_the_registry_default_else_4096() -> None:
    assert sent({"messages": [user("x")], "max_completion_tokens": 50, "max_tokens": 70})["max_tokens"] == 50
    assert sent({"messages": [user("x")], "max_tokens": 70}, 1000)["max_tokens"] == 70
    assert sent({"messages": [user("x")]}, 1000)["max_tokens"] == 1000
    assert sent({"messages": [user("x")]})["max_tokens"] == 4096


def test_sampling_stop_stream_and_user_are_mapped() -> None:
    body = sent({"messages": [user("x")], "temperature": 0.3, "top_p": 0.9, "stop": "END", "stream": True,
                 "stream_options": {"include_usage": True}, "user": "alice", "seed": 3, "top_k": 5})
    assert body == {"model": "claude-sonnet-4-20250514", "max_tokens": 4096, "temperature": 0.3, "top_p": 0.9,
                    "stop_sequences": ["END"], "stream": True, "metadata": {"user_id": "alice"}, "top_k": 5,
                    "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}
    assert sent({"messages": [user("x")], "stop": ["a", "b"]})["stop_sequences"] == ["a", "b"]


def test_consecutive_same_role_messages_are_merged_into_one_turn() -> None:
    body = sent({"messages": [user("one"), user("two"), {"role": "assistant", "content": "A"},
                              {"role": "assistant", "content": "B"}, user("")]})
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]},
    ]


def test_images_become_base64_or_url_sources() -> None:
    content = [{"type": "text", "text": "what is this?"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
               {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]
    blocks = sent({"messages": [{"role": "user", "content": content}]})["messages"][0]["content"]
    assert blocks[1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


@pytest.mark.parametrize("url", ["data:image/bmp;base64,AAAA", "data:image/png,notbase64", "ftp://x/y.png"])
def test_images_anthropic_cannot_take_are_a_400_naming_the_part(url: str) -> None:
    content = [{"type": "image_url", "image_url": {"url": url}}]
    with pytest.raises(ProviderError) as info:
        sent({"messages": [user("x"), {"role": "assistant", "content": "y"}, {"role": "user", "content": content}]})
    assert info.value.status == 400 and info.value.param == "messages[2].content[0].image_url.url"


def test_tools_tool_calls_and_tool_results_are_translated() -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
             {"type": "function", "function": {"name": "now"}}]
    messages = [user("weather?"),
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                    {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "22C"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
                user("thanks")]
    body = sent({"messages": messages, "tools": tools, "tool_choice": "required", "parallel_tool_calls": False})
    assert body["tools"] == [
        {"name": "get_weather", "description": "Weather",
         "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
        {"name": "now", "input_schema": {"type": "object", "properties": {}}}]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert body["messages"][1] == {"role": "assistant", "content": [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "now", "input": {}}]}
    assert body["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "22C"},
        {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
        {"type": "text", "text": "thanks"}]}
    assert len(body["messages"]) == 3


@pytest.mark.parametrize(("choice", "expected"), [
    ("auto", {"type": "auto"}), ("none", {"type": "none"}), ("required", {"type": "any"}),
    ({"type": "function", "function": {"name": "f"}}, {"type": "tool", "name": "f"}), (None, None),
])
def test_tool_choice_mapping(choice, expected) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert sent({"messages": [user("x")], "tools": tools, "tool_choice": choice}).get("tool_choice") == expected


@pytest.mark.parametrize(("field", "value"), [
    ("n", 2), ("logprobs", True), ("top_logprobs", 3), ("logit_bias", {"50256": -100}), ("presence_penalty", 0.5),
    ("frequency_penalty", -1), ("response_format", {"type": "json_object"}),
    ("response_format", {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}), ("audio", {"voice": "alloy"}),
    ("modalities", ["text", "audio"]), ("web_search_options", {}), ("reasoning_effort", "high"),
    ("functions", [{"name": "f"}]), ("function_call", "auto"),
])
def test_parameters_anthropic_cannot_honour_are_a_400_naming_them(field: str, value: object) -> None:
    with pytest.raises(ProviderError) as info:
        sent({"messages": [user("x")], field: value})
    error = info.value
    assert (error.status, error.type, error.code, error.param) == (400, "invalid_request_error", "unsupported_parameter", field)
    assert field in error.message and "Anthropic" in error.message
    assert_valid("ErrorResponse", render(error)[2])


def test_harmless_parameters_are_accepted_and_not_sent() -> None:
    body = sent({"messages": [user("x")], "n": 1, "logprobs": False, "presence_penalty": 0, "seed": 1, "store": True,
                 "metadata": {"k": "v"}, "service_tier": "auto", "response_format": {"type": "text"},
                 "parallel_tool_calls": True, "prompt_cache_key": "k", "modalities": ["text"]})
    assert set(body) == {"model", "max_tokens", "messages"}


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": [user("x")], "temperature": 1.5}, "temperature"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}, "messages[0].content[0]"),
    ({"messages": [user("x"), {"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]},
     "messages[1].tool_calls[0].function.arguments"),
    ({"messages": [user("x")], "tools": [{"type": "custom", "custom": {"name": "g"}}]}, "tools[0]"),
    ({"messages": [user("x")], "tool_choice": "required"}, "tool_choice"),
])
def test_requests_anthropic_would_misread_are_a_400_with_the_param(body: dict, param: str) -> None:
    with pytest.raises(ProviderError) as info:
        sent(body)
    assert info.value.status == 400 and info.value.param == param


# -- answers ---------------------------------------------------------------------------------------

MESSAGE = {"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "model": "claude-sonnet-4",
           "content": [{"type": "text", "text": "Hi, I'm Claude."}], "stop_reason": "end_turn", "stop_sequence": None,
           "usage": {"input_tokens": 12, "output_tokens": 9, "cache_creation_input_tokens": 3, "cache_read_input_tokens": 5}}


def test_message_becomes_a_chat_completion_with_usage_including_cache_tokens() -> None:
    result = adapter().chat_result(orjson.dumps(MESSAGE), "claude-public")
    completion = orjson.loads(result.body)
    assert_valid("CreateChatCompletionResponse", completion)
    assert completion["model"] == "claude-public" and completion["object"] == "chat.completion"
    assert completion["choices"][0] == {"index": 0, "logprobs": None, "finish_reason": "stop", "message": {
        "role": "assistant", "content": "Hi, I'm Claude.", "refusal": None}}
    assert completion["usage"] == {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29,
                                   "prompt_tokens_details": {"cached_tokens": 5}}
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.total_tokens) == (20, 9, 29)
    assert result.usage.cached_tokens == 5  # cache reads; cache writes are ordinary prompt tokens


def test_tool_use_blocks_become_tool_calls() -> None:
    message = {**MESSAGE, "stop_reason": "tool_use", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris"}}]}
    completion = orjson.loads(adapter().chat_result(orjson.dumps(message), "m").body)
    assert_valid("CreateChatCompletionResponse", completion)
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [{"id": "toolu_1", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"location":"Paris"}'}}]


@pytest.mark.parametrize(("stop_reason", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("pause_turn", "stop"), ("max_tokens", "length"),
    ("model_context_window_exceeded", "length"), ("tool_use", "tool_calls"), ("refusal", "content_filter"),
])
def test_stop_reasons_map_to_finish_reasons(stop_reason: str, finish: str) -> None:
    completion = orjson.loads(adapter().chat_result(orjson.dumps({**MESSAGE, "stop_reason": stop_reason}), "m").body)
    assert completion["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize("body", [b"<html>oops</html>", b'{"type":"error"}', b'{"choices":[]}'])
def test_a_200_that_is_not_a_message_is_a_502(body: bytes) -> None:
    with pytest.raises(ProviderError) as info:
        adapter().chat_result(body, "m")
    assert info.value.status == 502


# -- streams ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("piece", [1, 9, 100_000])
def test_recorded_stream_becomes_openai_chunks(piece: int) -> None:
    translator = adapter().chat_stream("claude-public", include_usage=False)
    events = chunks(run_stream(translator, RECORDED, piece))
    assert [e["choices"][0]["delta"] for e in events] == [{"role": "assistant", "content": ""}, {"content": "Hello"}, {}]
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    assert {e["model"] for e in events} == {"claude-public"}
    assert {e["id"] for e in events} == {"msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK"}
    assert all("usage" not in e and "system_fingerprint" not in e for e in events)
    assert translator.finished and translator.first_token_seen
    assert (translator.usage.prompt_tokens, translator.usage.completion_tokens) == (11, 6)


def test_recorded_stream_with_include_usage_ends_with_a_usage_chunk() -> None:
    out = run_stream(adapter().chat_stream("m", include_usage=True), RECORDED.replace(b"\n", b"\r\n"), 17)
    events = chunks(out)
    assert all(e["usage"] is None for e in events[:-1])
    assert events[-1]["choices"] == [] and events[-1]["usage"]["total_tokens"] == 17


def test_tool_use_stream_numbers_calls_from_zero_and_takes_the_last_cumulative_usage() -> None:
    translator = adapter().chat_stream("m", include_usage=True)
    events = chunks(run_stream(translator, TOOL_STREAM, 23))
    calls = [tc for e in events if e["choices"] for tc in e["choices"][0]["delta"].get("tool_calls") or []]
    assert calls[0] == {"index": 0, "id": "toolu_01NRLabsLyVHZPKxbKvkfSMn", "type": "function",
                        "function": {"name": "get_weather", "arguments": ""}}
    assert {c["index"] for c in calls} == {0}
    assert orjson.loads("".join(c["function"].get("arguments", "") for c in calls)) == {"location": "Paris"}
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"]) == "Let me check."
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert events[-1]["usage"] == {"prompt_tokens": 572, "completion_tokens": 89, "total_tokens": 661,
                                   "prompt_tokens_details": {"cached_tokens": 100}}
    assert translator.usage.cached_tokens == 100


def test_role_chunk_is_not_the_first_token() -> None:
    translator = adapter().chat_stream("m", include_usage=False)
    translator.feed(RECORDED[: RECORDED.index(b"event: content_block_delta")])
    assert not translator.first_token_seen
    translator.feed(RECORDED[RECORDED.index(b"event: content_block_delta"):])
    assert translator.first_token_seen


def test_stream_cut_before_message_stop_is_not_finished_but_keeps_usage() -> None:
    translator = adapter().chat_stream("m", include_usage=False)
    out = run_stream(translator, RECORDED[: RECORDED.index(b"event: message_stop")], 50)
    assert b"[DONE]" not in out and not translator.finished
    assert translator.usage.completion_tokens == 6


def test_overloaded_error_event_raises_a_503_after_the_text_before_it() -> None:
    cut = RECORDED.index(b"event: content_block_stop")
    translator = adapter().chat_stream("m", include_usage=False)
    out = translator.feed(RECORDED[:cut] + OVERLOADED)
    assert b"Hello" in out
    with pytest.raises(ProviderError) as info:
        translator.close()
    assert (info.value.status, info.value.code) == (503, "upstream_overloaded")
    fresh = adapter().chat_stream("m", include_usage=False)
    with pytest.raises(ProviderError) as info:
        fresh.feed(OVERLOADED)
    assert info.value.status == 503


def test_stream_event_that_is_not_json_is_an_upstream_error() -> None:
    with pytest.raises(ProviderError) as info:
        adapter().chat_stream("m", include_usage=False).feed(b"event: message_start\ndata: {oops\n\n")
    assert info.value.status == 502


# -- errors ----------------------------------------------------------------------------------------

def anthropic_error(type_: str, message: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": type_, "message": message}, "request_id": "req_1"})


@pytest.mark.parametrize(("status", "type_", "expected_status", "expected_type", "expected_code"), [
    (400, "invalid_request_error", 400, "invalid_request_error", None),
    (404, "not_found_error", 404, "invalid_request_error", "not_found"),
    (413, "request_too_large", 413, "invalid_request_error", "request_too_large"),
    (429, "rate_limit_error", 429, "rate_limit_error", "rate_limit_exceeded"),
    (500, "api_error", 502, "upstream_error", "upstream_error"),
    (529, "overloaded_error", 503, "upstream_error", "upstream_overloaded"),
    (401, "authentication_error", 502, "upstream_error", "upstream_auth_failed"),
    (403, "permission_error", 502, "upstream_error", "upstream_auth_failed"),
])
def test_anthropic_errors_map_to_openai_errors(status, type_, expected_status, expected_type, expected_code) -> None:
    error = adapter().error(status, anthropic_error(type_, f"{type_} happened"), "7" if status == 429 else None)
    assert (error.status, error.type, error.code) == (expected_status, expected_type, expected_code)
    assert_valid("ErrorResponse", render(error)[2])
    if status < 401 or status in (404, 413, 429, 500, 529):
        assert error.message == f"{type_} happened"
    if status == 429:
        assert error.retry_after == "7"


def test_error_messages_never_show_the_key() -> None:
    error = adapter().error(400, anthropic_error("invalid_request_error", f"bad key {KEY} and sk-ant-api03-abc"))
    assert KEY not in error.message and "sk-ant" not in error.message
    assert adapter().error(502, b"<html>bad gateway</html>").status == 502
