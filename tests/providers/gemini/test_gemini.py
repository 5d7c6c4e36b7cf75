"""The Gemini adapter without a server: request mapping, answers, recorded streams, errors, refused fields."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.errors import render
from providers.base import Account, ProviderError
from providers.gemini.adapter import GeminiAdapter
from providers.gemini.response import GeminiStream
from providers.registry import adapter_class
from tests.openai_schema import assert_valid, assert_valid_sse

KEY = "AIzaSyD-verysecretgeminikey0123456789"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                         "additionalProperties": False}}}]

# Recorded answers and stream (from FirebaseExtended/vertexai-sdk-test-data).
RECORDED_UNARY = (
    b'{"candidates": [{"content": {"parts": [{"text": "Google\'s headquarters is in **Mountain View, California**.\\n"}],'
    b'"role": "model"},"finishReason": "STOP", "avgLogprobs": -0.048741644079034981}],'
    b'"usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 22, "totalTokenCount": 29,'
    b'"promptTokensDetails": [{"modality": "TEXT", "tokenCount": 7}],'
    b'"candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 22}]},"modelVersion": "gemini-2.0-flash"}'
)
RECORDED_STREAM = (
    b'data: {"candidates": [{"content": {"parts": [{"text": "The"}],"role": "model"}}],"usageMetadata": '
    b'{"promptTokenCount": 7,"totalTokenCount": 7,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 7}]},'
    b'"modelVersion": "gemini-3.1-flash-lite"}\r\n\r\n'
    b'data: {"candidates": [{"content": {"parts": [{"text": " capital of Wyoming"}],"role": "model"}}],'
    b'"usageMetadata": {"promptTokenCount": 7,"totalTokenCount": 7,"promptTokensDetails": [{"modality": "TEXT",'
    b'"tokenCount": 7}]},"modelVersion": "gemini-3.1-flash-lite"}\r\n\r\n'
    b'data: {"candidates": [{"content": {"parts": [{"text": " is **Cheyenne**.\\n"}],"role": "model"},'
    b'"finishReason": "STOP"}],"usageMetadata": {"promptTokenCount": 7,"candidatesTokenCount": 10,'
    b'"totalTokenCount": 17,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 7}],'
    b'"candidatesTokensDetails": [{"modality": "TEXT","tokenCount": 10}]},"modelVersion": "gemini-3.1-flash-lite"}\r\n\r\n'
)
KEY_INVALID = (
    b'{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT",'
    b'"details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID",'
    b'"domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}]}}'
)


def adapter(base_url: str = "") -> GeminiAdapter:
    return GeminiAdapter(Account("gem", "gemini", base_url, KEY, {}))


def sent(body: dict[str, Any], model: str = "gemini-2.5-flash", max_output_tokens: int | None = None) -> dict[str, Any]:
    return orjson.loads(adapter().chat_request(body, model, max_output_tokens).body)


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def refused(body: dict[str, Any]) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        adapter().chat_request({"messages": [user("hi")], **body}, "gemini-2.5-flash")
    assert info.value.status == 400 and info.value.type == "invalid_request_error"
    return info.value


def stream(data: bytes, piece: int = 100_000, include_usage: bool = False) -> tuple[GeminiStream, str]:
    translator = adapter().chat_stream("my-gemini", include_usage)
    out = b"".join(translator.feed(data[i:i + piece]) for i in range(0, len(data), piece)) + translator.close()
    return translator, out.decode()


def sse(*chunks: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks)


# -- requests --------------------------------------------------------------------------------------

def test_the_kind_is_registered_with_googles_default_url() -> None:
    assert adapter_class("gemini") is GeminiAdapter
    assert GeminiAdapter.default_base_url == "https://generativelanguage.googleapis.com/v1beta"


def test_plain_and_streamed_calls_use_the_two_endpoints_with_the_key_in_a_header_only() -> None:
    plain = adapter().chat_request({"messages": [user("hi")]}, "gemini-2.5-flash")
    streamed = adapter("http://127.0.0.1:9/v1beta/").chat_request({"messages": [user("hi")], "stream": True},
                                                                  "models/gemini-2.5-pro")
    assert plain.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    assert streamed.url == "http://127.0.0.1:9/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    assert plain.headers["x-goog-api-key"] == KEY and KEY not in plain.url and KEY not in streamed.url
    assert "stream" not in orjson.loads(streamed.body)
    models = adapter().models_request()
    assert (models.method, models.url, models.headers["x-goog-api-key"]) == (
        "GET", "https://generativelanguage.googleapis.com/v1beta/models", KEY)


def test_roles_become_user_and_model_and_system_prompts_move_to_system_instruction() -> None:
    body = sent({"messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        user("Hello"), {"role": "assistant", "content": "Hi! How can I help?"}, user("Tell me a joke")]})
    assert body["systemInstruction"] == {"parts": [{"text": "You are terse."}, {"text": "Answer in French."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Hello"}]},
        {"role": "model", "parts": [{"text": "Hi! How can I help?"}]},
        {"role": "user", "parts": [{"text": "Tell me a joke"}]}]


def test_sampling_fields_map_to_generation_config() -> None:
    body = sent({"messages": [user("hi")], "temperature": 0.7, "top_p": 0.95, "top_k": 40, "max_tokens": 512,
                 "stop": "\n\n", "n": 2, "seed": 42, "presence_penalty": 0.5, "frequency_penalty": -0.5,
                 "response_format": {"type": "json_object"}, "reasoning_effort": "low"})
    assert body["generationConfig"] == {
        "temperature": 0.7, "topP": 0.95, "topK": 40, "maxOutputTokens": 512, "stopSequences": ["\n\n"],
        "candidateCount": 2, "seed": 42, "presencePenalty": 0.5, "frequencyPenalty": -0.5,
        "responseMimeType": "application/json", "thinkingConfig": {"thinkingBudget": 1024}}


def test_output_limit_prefers_max_completion_tokens_then_max_tokens_then_the_registry_default() -> None:
    limit = lambda body: sent({"messages": [user("hi")], **body}, max_output_tokens=300).get(  # noqa: E731
        "generationConfig", {}).get("maxOutputTokens")
    assert limit({"max_completion_tokens": 10, "max_tokens": 20}) == 10
    assert limit({"max_tokens": 20}) == 20
    assert limit({}) == 300
    assert "generationConfig" not in sent({"messages": [user("hi")]})


def test_json_schema_response_format_sends_the_schema() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    config = sent({"messages": [user("hi")], "response_format": {
        "type": "json_schema", "json_schema": {"name": "place", "strict": True, "schema": schema}}})["generationConfig"]
    assert config == {"responseMimeType": "application/json", "responseJsonSchema": schema}


def test_images_go_inline_from_data_urls_and_web_urls_are_refused_with_the_param() -> None:
    content = [{"type": "text", "text": "what is this?"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
               {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}]
    parts = sent({"messages": [{"role": "user", "content": content}]})["contents"][0]["parts"]
    assert parts == [{"text": "what is this?"}, {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                     {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}}]
    error = refused({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]})
    assert error.param == "messages[0].content[0].image_url.url" and "data: URL" in error.message
    uploaded = "https://generativelanguage.googleapis.com/v1beta/files/abc123"
    parts = sent({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": uploaded}}]}]})
    assert parts["contents"][0]["parts"] == [{"fileData": {"fileUri": uploaded}}]


def test_tools_and_tool_choice_map_to_function_declarations_and_calling_config() -> None:
    body = sent({"messages": [user("hi")], "tools": TOOLS, "tool_choice": "required"})
    assert body["tools"] == [{"functionDeclarations": [{
        "name": "get_weather", "description": "Weather for a city",
        "parametersJsonSchema": TOOLS[0]["function"]["parameters"]}]}]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    named = sent({"messages": [user("hi")], "tools": TOOLS,
                  "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})
    assert named["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    assert sent({"messages": [user("hi")], "tools": TOOLS, "tool_choice": "none"})["toolConfig"] == {
        "functionCallingConfig": {"mode": "NONE"}}
    assert refused({"tools": [{"type": "custom", "custom": {"name": "x"}}]}).param == "tools[0].type"


def test_tool_round_trip_names_each_function_response_and_returns_the_call_signature() -> None:
    messages = [
        user("weather in Paris and Rome?"),
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_r1_0.ts.c2lnbmF0dXJl", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}},
            {"id": "call_r1_1", "type": "function", "function": {"name": "get_time", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "call_r1_0.ts.c2lnbmF0dXJl", "content": "22C"},
        {"role": "tool", "tool_call_id": "call_r1_1", "content": '{"time": "12:00"}'},
    ]
    contents = sent({"messages": messages, "tools": TOOLS})["contents"]
    assert contents[1] == {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}, "thoughtSignature": "c2lnbmF0dXJl"},
        {"functionCall": {"name": "get_time", "args": {}}}]}
    assert contents[2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"result": "22C"}}},
        {"functionResponse": {"name": "get_time", "response": {"time": "12:00"}}}]}
    assert len(contents) == 3
    error = refused({"messages": [user("x"), {"role": "tool", "tool_call_id": "call_nowhere", "content": "1"}]})
    assert error.param == "messages[1].tool_call_id"
    bad_args = [user("x"), {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]
    assert refused({"messages": bad_args}).param == "messages[1].tool_calls[0].function.arguments"


@pytest.mark.parametrize(("field", "value"), [
    ("logprobs", True), ("logit_bias", {"50256": -100}), ("audio", {"voice": "alloy", "format": "wav"}),
    ("functions", [{"name": "f"}]), ("web_search_options", {}), ("verbosity", "low"),
    ("modalities", ["text", "audio"]), ("reasoning_effort", "minimal"), ("made_up_field", 1),
])
def test_fields_gemini_cannot_honour_are_refused_naming_field_and_provider(field: str, value: Any) -> None:
    if field == "web_search_options":
        value = {"search_context_size": "low"}
    error = refused({field: value})
    assert error.param == field and field in error.message and "Google Gemini" in error.message
    assert error.code in ("unsupported_parameter", "unsupported_value")


def test_harmless_fields_are_dropped_and_false_or_empty_refusable_fields_are_fine() -> None:
    body = sent({"messages": [user("hi")], "user": "u1", "store": False, "metadata": {"a": "b"},
                 "parallel_tool_calls": False, "service_tier": "auto", "logprobs": False, "logit_bias": {},
                 "stream_options": {"include_usage": True}, "prompt_cache_key": "k", "temperature": None})
    assert body == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def test_a_conversation_with_only_a_system_prompt_is_refused() -> None:
    assert refused({"messages": [{"role": "system", "content": "be nice"}]}).param == "messages"


# -- answers ---------------------------------------------------------------------------------------

def answer(data: dict[str, Any] | bytes) -> dict[str, Any]:
    raw = data if isinstance(data, bytes) else orjson.dumps(data)
    result = adapter().chat_result(raw, "my-gemini")
    document = orjson.loads(result.body)
    assert_valid("CreateChatCompletionResponse", document)
    return document


def test_recorded_answer_becomes_a_chat_completion_with_usage() -> None:
    result = adapter().chat_result(RECORDED_UNARY, "my-gemini")
    document = answer(RECORDED_UNARY)
    assert document["model"] == "my-gemini" and document["object"] == "chat.completion"
    assert document["choices"] == [{"index": 0, "message": {
        "role": "assistant", "content": "Google's headquarters is in **Mountain View, California**.\n",
        "refusal": None}, "logprobs": None, "finish_reason": "stop"}]
    assert document["usage"]["total_tokens"] == 29 and result.usage.prompt_tokens == 7
    assert result.usage.completion_tokens == 22


def test_function_call_parts_become_tool_calls_with_ids_carrying_the_signature() -> None:
    document = answer({"responseId": "abc-123", "candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}, "thoughtSignature": "c2ln"},
        {"functionCall": {"name": "get_time", "args": {}}}]}, "finishReason": "STOP"}]})
    choice = document["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    calls = choice["message"]["tool_calls"]
    assert [c["id"] for c in calls] == ["call_abc123_0.ts.c2ln", "call_abc123_1"]
    assert orjson.loads(calls[0]["function"]["arguments"]) == {"location": "Paris"}


@pytest.mark.parametrize(("reason", "expected"), [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("BLOCKLIST", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
    ("OTHER", "stop"), ("MALFORMED_FUNCTION_CALL", "stop"), (None, "stop"),
])
def test_finish_reasons_map_to_openais(reason: str | None, expected: str) -> None:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": "x"}]}}
    if reason:
        candidate["finishReason"] = reason
    assert answer({"candidates": [candidate]})["choices"][0]["finish_reason"] == expected


def test_a_blocked_prompt_is_an_empty_content_filtered_answer_not_an_error() -> None:
    document = answer({"promptFeedback": {"blockReason": "SAFETY"},
                       "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}})
    assert document["choices"][0]["message"]["content"] == ""
    assert document["choices"][0]["finish_reason"] == "content_filter"


def test_thoughts_are_hidden_but_counted_as_output_tokens_and_several_candidates_keep_their_index() -> None:
    document = answer({"candidates": [
        {"index": 0, "content": {"parts": [{"text": "hmm", "thought": True}, {"text": "A"}]}, "finishReason": "STOP"},
        {"index": 1, "content": {"parts": [{"text": "B"}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2, "thoughtsTokenCount": 10,
                          "totalTokenCount": 16}})
    assert [(c["index"], c["message"]["content"]) for c in document["choices"]] == [(0, "A"), (1, "B")]
    assert document["usage"]["completion_tokens"] == 12
    assert document["usage"]["completion_tokens_details"]["reasoning_tokens"] == 10


def test_cached_content_tokens_are_the_usages_cached_tokens() -> None:
    result = adapter().chat_result(orjson.dumps({
        "candidates": [{"content": {"parts": [{"text": "A"}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 1200, "cachedContentTokenCount": 1000, "candidatesTokenCount": 1,
                          "totalTokenCount": 1201}}), "my-gemini")
    assert (result.usage.prompt_tokens, result.usage.cached_tokens) == (1200, 1000)
    assert orjson.loads(result.body)["usage"]["prompt_tokens_details"] == {"cached_tokens": 1000}


@pytest.mark.parametrize("body", [b"<html>oops</html>", b'{"candidates": []}', b"[]"])
def test_a_2xx_without_an_answer_is_an_upstream_error(body: bytes) -> None:
    with pytest.raises(ProviderError) as info:
        adapter().chat_result(body, "my-gemini")
    assert info.value.status == 502


# -- streams ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("piece", [1, 7, 64, 100_000])
def test_recorded_stream_replays_as_openai_chunks_ending_in_done(piece: int) -> None:
    translator, out = stream(RECORDED_STREAM, piece)
    events = assert_valid_sse("CreateChatCompletionStreamResponse", out)
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events) == \
        "The capital of Wyoming is **Cheyenne**.\n"
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(e["choices"] for e in events) and {e["model"] for e in events} == {"my-gemini"}
    assert len({e["id"] for e in events}) == 1
    assert translator.finished and translator.first_token_seen
    assert (translator.usage.prompt_tokens, translator.usage.completion_tokens, translator.usage.total_tokens) == (7, 10, 17)


def test_usage_chunk_comes_only_when_asked_and_holds_the_last_totals_not_a_sum() -> None:
    _, out = stream(RECORDED_STREAM, 50, include_usage=True)
    events = assert_valid_sse("CreateChatCompletionStreamResponse", out)
    assert events[-1]["choices"] == [] and events[-1]["usage"]["total_tokens"] == 17
    assert events[-1]["usage"]["prompt_tokens"] == 7


def test_a_stream_cut_before_the_finish_reason_is_not_finished() -> None:
    cut = RECORDED_STREAM[: RECORDED_STREAM.rindex(b"data: ")]
    translator, out = stream(cut)
    assert not translator.finished and "[DONE]" not in out


def test_streamed_function_calls_become_tool_call_deltas_and_a_tool_calls_finish() -> None:
    translator, out = stream(sse({"responseId": "r9", "candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 8, "totalTokenCount": 11}}))
    events = assert_valid_sse("CreateChatCompletionStreamResponse", out)
    calls = [tc for e in events for tc in e["choices"][0]["delta"].get("tool_calls") or []]
    assert calls == [{"index": 0, "id": "call_r9_0", "type": "function",
                      "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}}]
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls" and translator.first_token_seen


def test_a_prompt_blocked_mid_stream_ends_with_content_filter() -> None:
    translator, out = stream(RECORDED_STREAM.split(b"\r\n\r\n")[0] + b"\r\n\r\n" + sse(
        {"promptFeedback": {"blockReason": "SAFETY"}}))
    events = assert_valid_sse("CreateChatCompletionStreamResponse", out)
    assert events[-1]["choices"][0]["finish_reason"] == "content_filter" and translator.finished


def test_an_error_event_or_garbage_in_the_stream_raises_a_provider_error() -> None:
    translator = adapter().chat_stream("m", False)
    with pytest.raises(ProviderError) as info:
        translator.feed(b'data: {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}\n\n')
    assert info.value.status == 503
    with pytest.raises(ProviderError) as info:
        adapter().chat_stream("m", False).feed(b"data: {truncated\n\n")
    assert info.value.status == 502


# -- errors ----------------------------------------------------------------------------------------

def test_an_invalid_provider_key_is_the_gateways_problem_not_the_clients_400() -> None:
    error = adapter().error(400, KEY_INVALID)
    assert (error.status, error.code) == (502, "upstream_auth_failed") and "'gem'" in error.message
    assert adapter().error(403, b'{"error":{"code":403,"message":"denied","status":"PERMISSION_DENIED"}}').code == \
        "upstream_auth_failed"


def test_client_errors_keep_status_and_googles_message_without_the_key() -> None:
    body = orjson.dumps({"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                   "message": f"Invalid value at 'generation_config.temperature' {KEY}"}})
    error = adapter().error(400, body)
    assert (error.status, error.type, error.code) == (400, "invalid_request_error", "invalid_argument")
    assert "generation_config.temperature" in error.message and KEY not in error.message
    listed = adapter().error(404, b'[{"error": {"code": 404, "message": "models/x is not found", "status": "NOT_FOUND"}}]')
    assert (listed.status, listed.message) == (404, "models/x is not found")


def test_quota_errors_are_429_with_retry_after_from_retry_info() -> None:
    body = orjson.dumps({"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "46.2s"}]}})
    error = adapter().error(429, body)
    assert (error.status, error.code, error.retry_after) == (429, "rate_limit_exceeded", "47")
    assert adapter().error(429, body, "3").retry_after == "3"


@pytest.mark.parametrize(("status", "body", "expected"), [
    (500, b'{"error":{"code":500,"message":"An internal error has occurred.","status":"INTERNAL"}}', 502),
    (503, b'{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}', 503),
    (504, b'{"error":{"code":504,"message":"deadline","status":"DEADLINE_EXCEEDED"}}', 504),
    (400, b'{"error":{"code":400,"message":"User location is not supported.","status":"FAILED_PRECONDITION"}}', 502),
    (502, b"<html>bad gateway</html>", 502),
])
def test_upstream_failures_become_gateway_statuses(status: int, body: bytes, expected: int) -> None:
    error = adapter().error(status, body)
    assert error.status == expected and error.type == "upstream_error"
    assert_valid("ErrorResponse", render(error)[2])
