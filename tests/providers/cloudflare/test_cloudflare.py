"""The Cloudflare Workers AI adapter without a server: request mapping, answers, streams, errors."""

from __future__ import annotations

import orjson
import pytest

from gateway.errors import render
from providers.base import Account, ProviderError
from providers.cloudflare.adapter import CloudflareAdapter
from providers.registry import adapter_for
from tests.openai_schema import assert_valid, assert_valid_sse

TOKEN = "cf-api-token-verysecret-0123456789"
SCOUT = "@cf/meta/llama-4-scout-17b-16e-instruct"
USER = [{"role": "user", "content": "hi"}]

# A stream with a tool call: lines from Cloudflare's provider tests and a captured transcript.
RECORDED_TOOL_STREAM = (
    b'data: {"response":"Hello"}\n\n'
    b'data: {"response":" world","p":"abdefgh"}\n\n'
    b'data: {"tool_calls":[{"id":"call123","type":"function","index":0,"function":{"name":"get_weather",'
    b'"arguments":"{\\"location\\": \\"London\\"}"}}]}\n\n'
    b'data: {"finish_reason":"tool_calls"}\n\n'
    b'data: {"response":"","usage":{"prompt_tokens":418,"completion_tokens":41,"total_tokens":459}}\n\n'
    b"data: [DONE]\n\n"
)
RECORDED_TEXT_STREAM = (
    b'data: {"response":"Hello"}\n\n'
    b'data: {"response":" world","p":"abdefgh"}\n\n'
    b'data: {"response":"","usage":{"prompt_tokens":18,"completion_tokens":2,"total_tokens":20}}\n\n'
    b"data: [DONE]\n\n"
)
# A recorded run result with a tool call, in the v4 envelope.
RECORDED_RESULT = (
    b'{"result":{"response":"Hello, World first appeared in 1974 ...",'
    b'"usage":{"prompt_tokens":18,"completion_tokens":52,"total_tokens":70},'
    b'"tool_calls":[{"name":"get_weather","arguments":{"location":"London"}}]},'
    b'"success":true,"errors":[],"messages":[]}'
)


def adapter(options: dict | None = None, base_url: str = "") -> CloudflareAdapter:
    account = Account("cf-main", "cloudflare", base_url, TOKEN, {"account_id": "acc123"} if options is None else options)
    found = adapter_for(account)
    assert isinstance(found, CloudflareAdapter)
    return found


def sent(body: dict, model: str = SCOUT, max_output_tokens: int | None = None) -> dict:
    return orjson.loads(adapter().chat_request(body, model, max_output_tokens).body)


def run_stream(translator, data: bytes, piece: int) -> bytes:
    out = b"".join(translator.feed(data[i : i + piece]) for i in range(0, len(data), piece))
    return out + translator.close()


def deltas(events: list[dict]) -> tuple[str, list[dict], list[str | None]]:
    content = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    calls = [tc for e in events if e["choices"] for tc in e["choices"][0]["delta"].get("tool_calls") or []]
    return content, calls, [e["choices"][0]["finish_reason"] for e in events if e["choices"]]


# -- request -------------------------------------------------------------------------------------------

def test_request_goes_to_the_run_endpoint_of_the_account_with_the_model_path_kept() -> None:
    request = adapter().chat_request({"messages": USER}, SCOUT, 512)
    assert request.method == "POST"
    assert request.url == f"https://api.cloudflare.com/client/v4/accounts/acc123/ai/run/{SCOUT}"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    custom = adapter(base_url="http://127.0.0.1:9/client/v4/").chat_request({"messages": USER}, "@hf/thebloke/m", 1)
    assert custom.url == "http://127.0.0.1:9/client/v4/accounts/acc123/ai/run/@hf/thebloke/m"


def test_missing_account_id_is_a_configuration_error_naming_the_account() -> None:
    for options in ({}, {"account_id": ""}, {"account_id": 5}):
        with pytest.raises(ProviderError) as info:
            adapter(options).chat_request({"messages": USER}, SCOUT)
        assert info.value.status == 500 and info.value.code == "provider_misconfigured"
        assert "cf-main" in info.value.message and "account_id" in info.value.message
        assert "Account ID in the admin (Provider accounts → cf-main → Options)" in info.value.message
    with pytest.raises(ProviderError):
        adapter({}).models_request()


def test_messages_become_role_and_string_content_with_text_parts_flattened() -> None:
    body = sent({"messages": [
        {"role": "developer", "content": "Be terse."},
        {"role": "system", "content": [{"type": "text", "text": "Be kind."}]},
        {"role": "user", "name": "ann", "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]},
        {"role": "assistant", "content": "ok"},
    ]})
    assert body["messages"] == [{"role": "system", "content": "Be terse."}, {"role": "system", "content": "Be kind."},
                                {"role": "user", "content": "first\nsecond"}, {"role": "assistant", "content": "ok"}]


def test_images_are_rejected_naming_the_content_part() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    with pytest.raises(ProviderError) as info:
        sent({"messages": [{"role": "user", "content": [{"type": "text", "text": "what is it?"}, image]}]})
    assert (info.value.status, info.value.param) == (400, "messages[0].content[1]")
    assert "image_url" in info.value.message and "Cloudflare" in info.value.message


def test_sampling_parameters_pass_and_max_tokens_comes_from_client_or_registry_default() -> None:
    body = sent({"messages": USER, "temperature": 0.3, "top_p": 0.9, "top_k": 40, "seed": 7, "frequency_penalty": 0.5,
                 "presence_penalty": 0.2, "repetition_penalty": 1.1, "max_tokens": 64, "user": "u1",
                 "stream": True, "stream_options": {"include_usage": True}}, max_output_tokens=1024)
    assert body == {"messages": USER, "temperature": 0.3, "top_p": 0.9, "top_k": 40, "seed": 7,
                    "frequency_penalty": 0.5, "presence_penalty": 0.2, "repetition_penalty": 1.1,
                    "max_tokens": 64, "stream": True}
    assert sent({"messages": USER, "max_completion_tokens": 32}, max_output_tokens=1024)["max_tokens"] == 32
    assert sent({"messages": USER}, max_output_tokens=1024)["max_tokens"] == 1024
    assert "max_tokens" not in sent({"messages": USER})


def test_tools_and_tool_results_are_sent_in_workers_ai_form() -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "strict": True,
                                               "parameters": {"type": "object", "properties": {}}}}]
    body = sent({"messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "22C"}]},
    ], "tools": tools, "tool_choice": "auto", "parallel_tool_calls": True})
    assert body["tools"] == [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                                               "parameters": {"type": "object", "properties": {}}}}]
    assert body["messages"][1] == {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]}
    assert body["messages"][2] == {"role": "tool", "content": "22C", "tool_call_id": "call_1", "name": "get_weather"}
    assert "tools" not in sent({"messages": USER, "tools": tools, "tool_choice": "none"})


def test_response_format_json_schema_is_sent_as_a_bare_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    body = sent({"messages": USER, "response_format": {"type": "json_schema",
                                                       "json_schema": {"name": "x", "schema": schema, "strict": True}}})
    assert body["response_format"] == {"type": "json_schema", "json_schema": schema}
    assert sent({"messages": USER, "response_format": {"type": "json_object"}})["response_format"] == {
        "type": "json_object"}
    assert "response_format" not in sent({"messages": USER, "response_format": {"type": "text"}})


@pytest.mark.parametrize(("field", "value"), [
    ("n", 2), ("logprobs", True), ("top_logprobs", 3), ("logit_bias", {"50256": -100}), ("stop", ["\n"]),
    ("tool_choice", "required"), ("parallel_tool_calls", False), ("reasoning_effort", "low"),
    ("functions", [{"name": "f"}]), ("modalities", ["text", "audio"]), ("frequency_penalty", -1.0),
    ("some_new_field", 1),
])
def test_parameters_that_would_change_the_answer_are_refused_naming_them(field: str, value: object) -> None:
    body = {"messages": USER, field: value}
    if field in ("tool_choice", "parallel_tool_calls"):
        body["tools"] = [{"type": "function", "function": {"name": "f"}}]
    with pytest.raises(ProviderError) as info:
        sent(body)
    error = info.value
    assert (error.status, error.type, error.param) == (400, "invalid_request_error", field)
    assert field in error.message and "Cloudflare" in error.message
    assert_valid("ErrorResponse", render(error)[2])


def test_neutral_values_of_unsupported_parameters_are_accepted() -> None:
    body = sent({"messages": USER, "n": 1, "logprobs": False, "stop": None, "logit_bias": {}, "modalities": ["text"]})
    assert set(body) == {"messages"}


# -- non-streamed answers --------------------------------------------------------------------------------

def completion(body: bytes, max_output_tokens: int | None = None, request: dict | None = None) -> dict:
    cf = adapter()
    sent = cf.chat_request(request or {"messages": USER}, SCOUT, max_output_tokens)
    result = cf.chat_result(body, "scout", sent.context)
    data = orjson.loads(result.body)
    assert_valid("CreateChatCompletionResponse", data)
    return {"data": data, "usage": result.usage}


def test_recorded_result_with_tool_calls_becomes_an_openai_completion() -> None:
    out = completion(RECORDED_RESULT)
    choice = out["data"]["choices"][0]
    assert out["data"]["model"] == "scout" and choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["id"].startswith("call_") and call["function"]["name"] == "get_weather"
    assert orjson.loads(call["function"]["arguments"]) == {"location": "London"}
    assert choice["message"]["refusal"] is None and choice["logprobs"] is None
    assert out["data"]["usage"] == {"prompt_tokens": 18, "completion_tokens": 52, "total_tokens": 70}
    assert out["usage"].total_tokens == 70


def test_plain_answer_stops_and_an_answer_at_the_limit_sent_is_cut_for_length() -> None:
    def body(tokens: int) -> bytes:
        return orjson.dumps({"result": {"response": "Hi there", "usage": {"prompt_tokens": 3, "completion_tokens": tokens,
                                                                         "total_tokens": 3 + tokens}},
                             "success": True, "errors": [], "messages": []})

    plain = completion(body(2), max_output_tokens=100)["data"]["choices"][0]
    assert plain["message"]["content"] == "Hi there" and plain["finish_reason"] == "stop"
    assert completion(body(100), max_output_tokens=100)["data"]["choices"][0]["finish_reason"] == "length"
    assert completion(body(5), request={"messages": USER, "max_tokens": 5})["data"]["choices"][0]["finish_reason"] == "length"
    # Nothing sent: Workers AI's own default of 256 applied.
    assert completion(body(256))["data"]["choices"][0]["finish_reason"] == "length"


def test_the_adapter_keeps_nothing_between_calls_the_request_context_carries_the_limit() -> None:
    cf = adapter()
    small = cf.chat_request({"messages": USER, "max_tokens": 5}, SCOUT)
    large = cf.chat_request({"messages": USER, "max_tokens": 500}, SCOUT)
    assert vars(cf) == {"account": cf.account}
    answer = orjson.dumps({"result": {"response": "Hi", "usage": {"prompt_tokens": 3, "completion_tokens": 5,
                                                                  "total_tokens": 8}}, "success": True})
    finish = lambda context: orjson.loads(cf.chat_result(answer, "scout", context).body)["choices"][0][  # noqa: E731
        "finish_reason"]
    assert (finish(small.context), finish(large.context)) == ("length", "stop")


def test_json_mode_object_response_is_serialised_and_missing_usage_is_omitted() -> None:
    out = completion(b'{"result":{"response":{"a":1}},"success":true,"errors":[],"messages":[]}')
    assert orjson.loads(out["data"]["choices"][0]["message"]["content"]) == {"a": 1}
    assert "usage" not in out["data"] and out["usage"] is None


@pytest.mark.parametrize("body", [b"<html>502</html>", b'{"success":true}', b'{"result":null,"success":true}',
                                  b'{"result":null,"success":false,"errors":[{"code":1,"message":"boom"}]}'])
def test_a_200_that_is_not_a_result_is_an_upstream_error(body: bytes) -> None:
    with pytest.raises(ProviderError) as info:
        adapter().chat_result(body, "scout")
    assert info.value.status == 502 and info.value.type == "upstream_error"


# -- streams --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("piece", [1, 9, 100_000])
def test_recorded_tool_stream_becomes_valid_openai_chunks(piece: int) -> None:
    translator = adapter().chat_stream("scout", include_usage=True)
    out = run_stream(translator, RECORDED_TOOL_STREAM, piece).decode()
    events = assert_valid_sse("CreateChatCompletionStreamResponse", out)
    content, calls, finishes = deltas(events)
    assert content == "Hello world" and events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert calls == [{"index": 0, "id": "call123", "type": "function",
                      "function": {"name": "get_weather", "arguments": '{"location": "London"}'}}]
    assert finishes[-1] == "tool_calls" and finishes[:-1] == [None] * (len(finishes) - 1)
    assert events[-1]["choices"] == [] and events[-1]["usage"]["total_tokens"] == 459
    assert len({e["id"] for e in events}) == 1 and all(e["model"] == "scout" for e in events)
    assert translator.finished and translator.first_token_seen and translator.usage.prompt_tokens == 418


def test_stream_without_include_usage_has_no_usage_chunk_but_notes_usage() -> None:
    translator = adapter().chat_stream("scout", include_usage=False)
    events = assert_valid_sse("CreateChatCompletionStreamResponse",
                              run_stream(translator, RECORDED_TEXT_STREAM.replace(b"\n", b"\r\n"), 5).decode())
    assert all(e["choices"] for e in events) and deltas(events)[2][-1] == "stop"
    assert translator.usage.total_tokens == 20


def test_stream_reaching_the_limit_sent_finishes_with_length() -> None:
    cf = adapter()
    sent = cf.chat_request({"messages": USER, "stream": True, "max_tokens": 2}, SCOUT)
    events = assert_valid_sse("CreateChatCompletionStreamResponse",
                              run_stream(cf.chat_stream("scout", False, sent.context), RECORDED_TEXT_STREAM, 50).decode())
    assert deltas(events)[2][-1] == "length"


def test_openai_style_events_and_fragmented_tool_arguments_are_joined() -> None:
    data = (b'data: {"choices":[{"index":0,"delta":{"content":"ok"}}]}\n\n'
            b'data: {"tool_calls":[{"index":0,"id":"c1","function":{"name":"f","arguments":"{\\"a\\""}}]}\n\n'
            b'data: {"tool_calls":[{"index":0,"function":{"arguments":": 1}"}}]}\n\n'
            b"data: [DONE]\n\n")
    events = assert_valid_sse("CreateChatCompletionStreamResponse",
                              run_stream(adapter().chat_stream("scout", True), data, 7).decode())
    content, calls, finishes = deltas(events)
    assert content == "ok" and orjson.loads("".join(c["function"]["arguments"] for c in calls)) == {"a": 1}
    assert {c["index"] for c in calls} == {0} and finishes[-1] == "tool_calls"
    assert all(e["choices"] for e in events)  # no usage known: no usage chunk invented


def test_stream_without_done_is_not_finished_and_error_events_raise() -> None:
    translator = adapter().chat_stream("scout", False)
    run_stream(translator, RECORDED_TEXT_STREAM[: RECORDED_TEXT_STREAM.index(b"data: [DONE]")], 10)
    assert not translator.finished
    with pytest.raises(ProviderError) as info:
        adapter().chat_stream("scout", False).feed(b'data: {"error":"model crashed"}\n\n')
    assert info.value.status == 502 and "model crashed" in info.value.message


def test_stream_request_answered_with_plain_json_is_still_streamed() -> None:
    translator = adapter().chat_stream("scout", True)
    out = run_stream(translator, RECORDED_RESULT, 11).decode()
    events = assert_valid_sse("CreateChatCompletionStreamResponse", out)
    content, calls, finishes = deltas(events)
    assert content.startswith("Hello, World") and calls[0]["function"]["name"] == "get_weather"
    assert finishes[-1] == "tool_calls" and events[-1]["usage"]["total_tokens"] == 70


# -- errors ---------------------------------------------------------------------------------------------

def envelope(code: int, message: str) -> bytes:
    return orjson.dumps({"result": None, "success": False, "errors": [{"code": code, "message": message}],
                         "messages": []})


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_token_is_a_502_that_blames_the_gateway_and_names_no_token(status: int) -> None:
    error = adapter().error(status, envelope(10000, f"Authentication error {TOKEN}"))
    assert (error.status, error.code) == (502, "upstream_auth_failed") and TOKEN not in error.message


def test_client_errors_keep_their_status_with_cloudflares_message() -> None:
    error = adapter().error(400, envelope(5004, "Invalid data"))
    assert (error.status, error.type) == (400, "invalid_request_error")
    assert "Invalid data" in error.message and "5004" in error.message
    error = adapter().error(400, envelope(5007, "No such model @cf/x/y or task"))
    assert (error.status, error.type, error.code) == (404, "invalid_request_error", "model_not_found")
    assert "No such model" in error.message and "5007" in error.message
    assert adapter().error(413, envelope(3006, "Request too large")).status == 413
    assert_valid("ErrorResponse", render(error)[2])


def test_capacity_and_quota_errors_are_rate_limits_and_server_errors_are_502() -> None:
    busy = adapter().error(429, envelope(3040, "Capacity temporarily exceeded, please try again."), "2")
    assert (busy.status, busy.type, busy.code, busy.retry_after) == (429, "rate_limit_error", "rate_limit_exceeded", "2")
    assert adapter().error(400, envelope(3036, "Account limited")).status == 429
    assert adapter().error(500, envelope(5000, "Internal server error")).status == 502
    assert adapter().error(500, b"<html>oops</html>").message == "The upstream returned HTTP 500."
    assert adapter().error(408, envelope(3007, "Timeout")).status == 504


def test_unroutable_account_is_a_gateway_configuration_error() -> None:
    error = adapter().error(404, envelope(7003, "Could not route to /client/v4/accounts/bad/ai/run/x"))
    assert (error.status, error.code) == (502, "upstream_misconfigured")
    assert "cf-main" in error.message and "account_id" in error.message


def test_models_request_is_a_one_item_search_of_the_account() -> None:
    request = adapter().models_request()
    assert request.method == "GET" and request.body is None
    assert request.url == "https://api.cloudflare.com/client/v4/accounts/acc123/ai/models/search?per_page=1"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
