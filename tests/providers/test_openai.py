"""The OpenAI adapter: requests go out as sent, streams pass through byte for byte, errors are mapped."""

from __future__ import annotations

import orjson
import pytest

from providers.base import Account, ProviderError, Usage
from providers.openai import OpenAIAdapter, OpenAICompatibleAdapter, PassthroughStream

KEY = "sk-proj-verysecretkey1234567890abcd"

# A recorded chat completion stream, with the usage chunk the gateway asks for.
RECORDED = (
    b'data: {"id":"chatcmpl-ABfw031m","object":"chat.completion.chunk","created":1727346168,"model":"gpt-4o-2024-08-06",'
    b'"system_fingerprint":"fp_5050236cbd","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
    b'"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
    b'data: {"id":"chatcmpl-ABfw031m","object":"chat.completion.chunk","created":1727346168,"model":"gpt-4o-2024-08-06",'
    b'"system_fingerprint":"fp_5050236cbd","choices":[{"index":0,"delta":{"content":"I\'m"},"logprobs":null,'
    b'"finish_reason":null}],"usage":null}\n\n'
    b'data: {"id":"chatcmpl-ABfw031m","object":"chat.completion.chunk","created":1727346168,"model":"gpt-4o-2024-08-06",'
    b'"system_fingerprint":"fp_5050236cbd","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],'
    b'"usage":null}\n\n'
    b'data: {"id":"chatcmpl-ABfw031m","object":"chat.completion.chunk","created":1727346168,"model":"gpt-4o-2024-08-06",'
    b'"system_fingerprint":"fp_5050236cbd","choices":[],"usage":{"prompt_tokens":14,"completion_tokens":30,'
    b'"total_tokens":44,"completion_tokens_details":{"reasoning_tokens":0}}}\n\n'
    b"data: [DONE]\n\n"
)


def adapter(cls: type[OpenAIAdapter] = OpenAIAdapter, **options: object) -> OpenAIAdapter:
    return cls(Account("main", cls.kind, "", KEY, dict(options)))


def run_stream(translator: PassthroughStream, data: bytes, piece: int) -> bytes:
    out = b"".join(translator.feed(data[i : i + piece]) for i in range(0, len(data), piece))
    return out + translator.close()


def events(data: bytes) -> list[bytes]:
    return [e for e in data.split(b"\n\n") if e]


@pytest.mark.parametrize("piece", [1, 7, 64, 100_000])
def test_stream_passes_events_through_unchanged_and_drops_usage_chunk_nobody_asked_for(piece: int) -> None:
    translator = PassthroughStream(include_usage=False)
    out = run_stream(translator, RECORDED, piece)
    recorded = events(RECORDED)
    assert events(out) == recorded[:3] + recorded[4:]
    assert translator.usage is not None and translator.usage.total_tokens == 44
    assert translator.finished and translator.first_token_seen


def test_stream_keeps_usage_chunk_when_client_asked() -> None:
    translator = PassthroughStream(include_usage=True)
    assert run_stream(translator, RECORDED, 13) == RECORDED
    assert translator.usage.prompt_tokens == 14 and translator.usage.completion_tokens == 30


def test_cached_prompt_tokens_are_read_from_prompt_tokens_details() -> None:
    usage = Usage.from_openai({"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
                               "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0}})
    assert (usage.prompt_tokens, usage.cached_tokens) == (2006, 1920)
    assert Usage.from_openai({"prompt_tokens": 3, "prompt_tokens_details": None}).cached_tokens == 0


def test_stream_accepts_crlf_framing_and_spaced_json() -> None:
    spaced = (b'data: {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}\r\n\r\n'
              b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}\r\n\r\n'
              b"data: [DONE]\r\n\r\n")
    translator = PassthroughStream(include_usage=False)
    out = run_stream(translator, spaced, 5)
    assert out.count(b"data: ") == 2 and b"usage" not in out
    assert translator.usage.total_tokens == 4 and translator.finished


def test_stream_without_done_is_not_finished() -> None:
    translator = PassthroughStream(include_usage=False)
    run_stream(translator, RECORDED[: RECORDED.index(b"data: [DONE]")], 50)
    assert not translator.finished


def test_role_only_chunk_is_not_the_first_token() -> None:
    translator = PassthroughStream(include_usage=False)
    translator.feed(events(RECORDED)[0] + b"\n\n")
    assert not translator.first_token_seen
    translator.feed(events(RECORDED)[1] + b"\n\n")
    assert translator.first_token_seen


def test_chat_request_swaps_model_asks_for_usage_and_keeps_every_other_field() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True, "tools": [{"type": "function"}],
            "response_format": {"type": "json_object"}, "seed": 7, "stream_options": {"include_obfuscation": False}}
    request = adapter().chat_request(body, "gpt-4o-2024-08-06")
    sent = orjson.loads(request.body)
    assert request.url == "https://api.openai.com/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert sent["model"] == "gpt-4o-2024-08-06"
    assert sent["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert {k: sent[k] for k in ("tools", "response_format", "seed")} == {k: body[k] for k in ("tools", "response_format", "seed")}
    assert "stream_options" not in adapter().chat_request({"messages": []}, "m").body.decode()


def test_compatible_server_without_key_sends_no_authorization_header() -> None:
    compat = OpenAICompatibleAdapter(Account("local", "openai_compatible", "http://127.0.0.1:11434/v1/", "", {}))
    request = compat.chat_request({"messages": []}, "llama3")
    assert request.url == "http://127.0.0.1:11434/v1/chat/completions"
    assert "Authorization" not in request.headers


def test_upstream_rejecting_the_provider_key_is_a_502_that_names_no_key() -> None:
    body = orjson.dumps({"error": {"message": f"Incorrect API key provided: sk-proj-...abcd. {KEY}",
                                   "type": "invalid_request_error", "code": "invalid_api_key"}})
    error = adapter().error(401, body)
    assert error.status == 502 and error.code == "upstream_auth_failed"
    assert KEY not in error.message and "abcd" not in error.message


def test_client_errors_keep_status_param_and_message_without_secrets() -> None:
    body = orjson.dumps({"error": {"message": f"bad value near {KEY}", "type": "invalid_request_error",
                                   "param": "temperature", "code": "invalid_value"}})
    error = adapter().error(400, body)
    assert (error.status, error.param, error.code) == (400, "temperature", "invalid_value")
    assert KEY not in error.message and "[redacted]" in error.message


def test_rate_limit_keeps_retry_after_and_server_errors_become_502() -> None:
    limited = adapter().error(429, b'{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}', "3")
    assert (limited.status, limited.retry_after) == (429, "3")
    assert adapter().error(500, b"<html>oops</html>").status == 502
    assert adapter().error(503, b"").status == 503


def test_a_200_that_is_not_a_chat_completion_is_an_upstream_error() -> None:
    with pytest.raises(ProviderError) as info:
        adapter().chat_result(b"<html>login</html>", "gpt-4o")
    assert info.value.status == 502
    result = adapter().chat_result(b'{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}', "m")
    assert result.usage.total_tokens == 3


@pytest.mark.parametrize("bad", [
    b'data: {"choices": [{"delta": {"content": "x"\n\n',  # cut JSON
    b"data: [1, 2]\n\n",  # JSON, but no chunk
    b"<html><body>Bad gateway</body></html>\n\n",  # not an event stream
    b'{"error": {"message": "overloaded"}}\n\n',  # a JSON body where events were asked for
])
def test_stream_refuses_what_an_openai_sdk_could_not_parse_after_handing_on_the_events_before_it(bad: bytes) -> None:
    first = events(RECORDED)[0] + b"\n\n"
    translator = PassthroughStream(include_usage=False)
    assert translator.feed(first + bad) == first  # what came before is relayed...
    with pytest.raises(ProviderError) as raised:  # ...and the next call raises
        translator.feed(events(RECORDED)[1] + b"\n\n")
    assert raised.value.status == 502 and raised.value.code == "upstream_malformed"
    with pytest.raises(ProviderError):
        PassthroughStream(include_usage=False).feed(bad)


def test_an_upstream_error_event_in_the_stream_is_raised_with_its_message() -> None:
    translator = PassthroughStream(include_usage=False)
    with pytest.raises(ProviderError) as raised:
        translator.feed(b'data: {"error": {"message": "The server had an error", "type": "server_error"}}\n\n')
    assert (raised.value.status, raised.value.message, raised.value.type) == (502, "The server had an error",
                                                                              "server_error")
    assert raised.value.code == "upstream_stream_error"


def test_stream_keeps_comments_and_fields_and_ignores_what_follows_done() -> None:
    translator = PassthroughStream(include_usage=False)
    data = b": keep-alive\n\nevent: message\nid: 7\ndata: {\"choices\": []}\n\ndata: [DONE]\n\ndata: {\"x\": 1}\n\n"
    out = run_stream(translator, data, 5)
    assert out == b": keep-alive\n\nevent: message\nid: 7\ndata: {\"choices\": []}\n\ndata: [DONE]\n\n"
    assert translator.finished


def test_an_error_field_that_is_null_is_no_error() -> None:
    event = b'data: {"choices": [{"index": 0, "delta": {"content": "hi"}}], "error": null}\n\n'
    assert PassthroughStream(include_usage=False).feed(event) == event
