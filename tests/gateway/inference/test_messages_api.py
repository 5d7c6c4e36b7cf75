"""/v1/messages and /v1/messages/count_tokens end to end: Anthropic's official SDK against a live gateway
and the fake upstream of each provider kind (passed through to Anthropic, translated for the others)."""

from __future__ import annotations

import anthropic
import httpx
import orjson
import pytest

from gateway.models import RequestLog
from tests.conftest import UPSTREAM_KEY, make_fake_provider, make_model, make_token

# Provider kind -> the upstream model its fake serves; the gateway's model is "claude-<kind>".
UPSTREAMS = {"anthropic": "claude-sonnet-4-20250514", "openai": "gpt-4o-mini", "gemini": "gemini-2.5-flash",
             "cloudflare": "@cf/meta/llama-3.1-8b-instruct"}
KINDS = list(UPSTREAMS)
WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}


@pytest.fixture
def setup(live_gateway, fakes) -> dict:
    for kind, upstream_model in UPSTREAMS.items():
        account = make_fake_provider(kind, fakes[kind])
        make_model(f"claude-{kind}", (account, upstream_model), input_price_per_million="1",
                   output_price_per_million="2", cached_input_price_per_million="0.5")
    return {"gateway": live_gateway, "fakes": fakes, "token": make_token()}


def client(setup: dict, token: str | None = None, **kwargs) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=setup["gateway"].url, api_key=token or setup["token"], max_retries=0,
                               **kwargs)


def logs(setup: dict) -> list[RequestLog]:
    setup["gateway"].flush_logs()
    return list(RequestLog.objects.order_by("created_at"))


@pytest.mark.parametrize("kind", KINDS)
def test_a_message_through_the_sdk(setup: dict, kind: str) -> None:
    message = client(setup).messages.create(
        model=f"claude-{kind}", max_tokens=100, system="Be brief.",
        messages=[{"role": "user", "content": "hello there"}])
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and message.content[0].text == "Echo: hello there"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens == 3
    row = logs(setup)[-1]
    assert row.endpoint == "messages" and row.status_code == 200 and row.requested_model == f"claude-{kind}"
    assert row.completion_tokens == 3 and row.prompt_tokens > 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_streamed_message_through_the_sdk(setup: dict, kind: str) -> None:
    with client(setup).messages.stream(model=f"claude-{kind}", max_tokens=100,
                                       messages=[{"role": "user", "content": "count one two three"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Echo: count one two three"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 5
    row = logs(setup)[-1]
    assert row.endpoint == "messages" and row.stream and row.completion_tokens == 5 and row.prompt_tokens > 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_tool_round_trip(setup: dict, kind: str) -> None:
    sdk = client(setup)
    question = {"role": "user", "content": "please call get_weather"}
    first = sdk.messages.create(model=f"claude-{kind}", max_tokens=100, tools=[WEATHER], messages=[question])
    assert first.stop_reason == "tool_use"
    use = next(block for block in first.content if block.type == "tool_use")
    assert use.name == "get_weather" and use.input == {"location": "Paris"} and use.id
    answer = sdk.messages.create(model=f"claude-{kind}", max_tokens=100, tools=[WEATHER], messages=[
        question, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]}])
    assert answer.content[0].text == "Tool said: sunny"


@pytest.mark.parametrize("kind", KINDS)
def test_a_streamed_tool_call(setup: dict, kind: str) -> None:
    with client(setup).messages.stream(model=f"claude-{kind}", max_tokens=100, tools=[WEATHER],
                                       messages=[{"role": "user", "content": "call get_weather"}]) as stream:
        final = stream.get_final_message()
    use = next(block for block in final.content if block.type == "tool_use")
    assert use.name == "get_weather" and use.input == {"location": "Paris"}
    assert final.stop_reason == "tool_use"


@pytest.mark.parametrize("kind", KINDS)
def test_count_tokens(setup: dict, kind: str) -> None:
    counted = client(setup).messages.count_tokens(model=f"claude-{kind}",
                                                  messages=[{"role": "user", "content": "one two three four"}])
    assert counted.input_tokens > 0
    row = logs(setup)[-1]
    assert row.endpoint == "messages.count_tokens" and row.status_code == 200
    asked = [r for r in setup["fakes"][kind].requests if "count_tokens" in r.path]
    assert bool(asked) == (kind == "anthropic")  # the others are counted by the gateway itself


def test_images_reach_a_translated_upstream(setup: dict) -> None:
    message = client(setup).messages.create(model="claude-openai", max_tokens=100, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "text", "text": "what is this", "cache_control": {"type": "ephemeral"}}]}])
    assert message.content[0].text.startswith("Echo: what is this")
    sent = setup["fakes"]["openai"].last.json["messages"][0]["content"]
    assert [part["type"] for part in sent] == ["image_url", "image_url", "text"]
    assert sent[0]["image_url"]["url"] == "data:image/png;base64,iVBORw0KGgo="
    assert "cache_control" not in orjson.dumps(sent).decode()


def test_translated_request_maps_the_sampling_fields(setup: dict) -> None:
    client(setup).messages.create(
        model="claude-openai", max_tokens=50, stop_sequences=["END"], metadata={"user_id": "user-7"},
        system=[{"type": "text", "text": "A"}, {"type": "text", "text": "B"}],
        thinking={"type": "enabled", "budget_tokens": 1024}, messages=[{"role": "user", "content": "hi"}],
        extra_body={"temperature": 0.3, "top_p": 0.9, "top_k": 5})  # (fields this SDK version no longer names)
    sent = setup["fakes"]["openai"].last.json
    assert sent["max_tokens"] == 50 and sent["temperature"] == 0.3 and sent["top_p"] == 0.9
    assert sent["stop"] == ["END"] and sent["user"] == "user-7"
    assert sent["messages"][0] == {"role": "system", "content": "A\n\nB"}
    assert "top_k" not in sent and "thinking" not in sent  # OpenAI has neither: dropped


def test_a_translated_upstream_refuses_a_document_block(setup: dict) -> None:
    with pytest.raises(anthropic.BadRequestError) as raised:
        client(setup).messages.create(model="claude-openai", max_tokens=50, messages=[{"role": "user", "content": [
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}]}])
    assert raised.value.body["type"] == "error" and raised.value.body["error"]["type"] == "invalid_request_error"
    assert "document" in raised.value.body["error"]["message"]
    assert setup["fakes"]["openai"].requests == []


# -- the Anthropic passthrough ---------------------------------------------------------------------


def raw_post(setup: dict, path: str, body: bytes, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{setup['gateway'].url}{path}", content=body, headers={
        "x-api-key": setup["token"], "content-type": "application/json", **(headers or {})}, timeout=30)


def test_the_anthropic_passthrough_sends_the_clients_bytes_and_headers(setup: dict, fakes) -> None:
    account = make_fake_provider("anthropic", fakes["anthropic"], "anthropic-same")
    make_model("claude-sonnet-4-20250514", (account, "claude-sonnet-4-20250514"))
    body = (b'{ "model" : "claude-sonnet-4-20250514", "max_tokens": 20, "system": [{"type": "text", "text": "S",'
            b' "cache_control": {"type": "ephemeral"}}],\n "messages": [{"role": "user", "content": "hi \\u00e9"}]}')
    response = raw_post(setup, "/v1/messages", body, {
        "anthropic-version": "2023-06-01", "anthropic-beta": "interleaved-thinking-2025-05-14,prompt-caching"})
    assert response.status_code == 200 and response.json()["content"][0]["text"] == "Echo: hi é"
    seen = fakes["anthropic"].last
    assert seen.body == body
    assert seen.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14,prompt-caching"
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.headers["x-api-key"] == UPSTREAM_KEY and setup["token"] not in str(seen.headers)


def test_the_passthrough_replaces_only_the_model_value(setup: dict, fakes) -> None:
    body = (b'{"messages": [{"role": "user", "content": [{"type": "text", "text": "model \\"x\\"",'
            b' "cache_control": {"type": "ephemeral"}}]}], "model":"claude-anthropic", "max_tokens": 20,'
            b' "thinking": {"type": "enabled", "budget_tokens": 1024}}')
    response = raw_post(setup, "/v1/messages", body, {"anthropic-version": "2023-06-01"})
    assert response.status_code == 200
    assert fakes["anthropic"].last.body == body.replace(b'"claude-anthropic"', b'"claude-sonnet-4-20250514"')


def test_the_passthrough_stream_reaches_the_client_unchanged_and_its_usage_is_logged(setup: dict, fakes) -> None:
    with client(setup).messages.with_streaming_response.create(
            model="claude-anthropic", max_tokens=20, stream=True,
            messages=[{"role": "user", "content": "one two"}]) as response:
        received = b"".join(response.iter_bytes())
    assert b"event: message_start" in received and b"event: ping" in received
    assert received.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    row = logs(setup)[-1]
    assert row.completion_tokens == 3 and row.prompt_tokens == 2 and row.stream


def test_the_passthrough_count_tokens_reaches_the_upstream(setup: dict, fakes) -> None:
    counted = client(setup).messages.count_tokens(model="claude-anthropic",
                                                  messages=[{"role": "user", "content": "one two three"}])
    assert counted.input_tokens == 3
    seen = [r for r in fakes["anthropic"].requests if r.path == "/v1/messages/count_tokens"][-1]
    assert seen.json["model"] == "claude-sonnet-4-20250514"


def test_a_mid_stream_upstream_error_is_an_anthropic_error_event(setup: dict, fakes) -> None:
    fakes["anthropic"].overload_stream_after(3)
    response = raw_post(setup, "/v1/messages", orjson.dumps({
        "model": "claude-anthropic", "max_tokens": 20, "stream": True,
        "messages": [{"role": "user", "content": "one two"}]}))
    events = [e for e in response.text.split("\n\n") if e]
    assert events[-1].startswith("event: error\ndata: ")
    error = orjson.loads(events[-1].split("data: ", 1)[1])
    assert error["type"] == "error" and error["error"]["type"] == "overloaded_error"


# -- errors: Anthropic's envelope, so the SDK raises its own exceptions ------------------------------


def test_a_wrong_token_is_the_sdks_authentication_error(setup: dict) -> None:
    with pytest.raises(anthropic.AuthenticationError) as raised:
        client(setup, token="wrong").messages.create(model="claude-openai", max_tokens=10,
                                                     messages=[{"role": "user", "content": "hi"}])
    assert raised.value.body["error"]["type"] == "authentication_error"


def test_an_unknown_model_is_the_sdks_not_found_error(setup: dict) -> None:
    with pytest.raises(anthropic.NotFoundError) as raised:
        client(setup).messages.create(model="nope", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert raised.value.body["error"]["type"] == "not_found_error"


def test_a_missing_max_tokens_is_the_sdks_bad_request_error(setup: dict) -> None:
    response = raw_post(setup, "/v1/messages", orjson.dumps({"model": "claude-openai",
                                                             "messages": [{"role": "user", "content": "hi"}]}))
    assert response.status_code == 400
    assert response.json() == {"type": "error", "error": {"type": "invalid_request_error",
                                                          "message": "max_tokens: Field required"}}


def test_an_upstream_rate_limit_is_the_sdks_rate_limit_error(setup: dict, fakes) -> None:
    fakes["openai"].fail_next(429)
    with pytest.raises(anthropic.RateLimitError) as raised:
        client(setup).messages.create(model="claude-openai", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert raised.value.body["error"]["type"] == "rate_limit_error"


def test_a_model_outside_the_tokens_allow_list_is_the_sdks_permission_error(setup: dict) -> None:
    token = make_token("narrow", allowed_models="claude-gemini")
    with pytest.raises(anthropic.PermissionDeniedError):
        client(setup, token=token).messages.create(model="claude-openai", max_tokens=10,
                                                   messages=[{"role": "user", "content": "hi"}])


def test_bearer_authorization_works_as_claude_code_sends_it(setup: dict) -> None:
    message = client(setup, token="unused", default_headers={"Authorization": f"Bearer {setup['token']}",
                                                             "x-api-key": ""}).messages.create(
        model="claude-gemini", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].text == "Echo: hi"


def test_the_openai_endpoints_keep_their_envelope(setup: dict) -> None:
    response = httpx.post(f"{setup['gateway'].v1}/chat/completions", json={"model": "nope", "messages": []},
                          headers={"x-api-key": setup["token"]})
    assert response.status_code == 400 and "type" in response.json()["error"] and "param" in response.json()["error"]


# -- limits, usage and cost as for chat completions -------------------------------------------------


def test_a_tpm_limit_reserves_max_tokens(setup: dict) -> None:
    token = make_token("tpm", tpm=500)
    sdk = client(setup, token=token)
    sdk.messages.create(model="claude-openai", max_tokens=100, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.RateLimitError) as raised:
        sdk.messages.create(model="claude-openai", max_tokens=1000, messages=[{"role": "user", "content": "hi"}])
    assert raised.value.body["error"]["type"] == "rate_limit_error" and "max_tokens" in raised.value.message


def test_cache_read_tokens_are_priced_as_cached_input(setup: dict, fakes) -> None:
    fakes["anthropic"].cache_read_tokens = 1000
    message = client(setup).messages.create(model="claude-anthropic", max_tokens=100,
                                            messages=[{"role": "user", "content": "one two"}])
    assert message.usage.cache_read_input_tokens == 1000
    row = logs(setup)[-1]
    assert row.prompt_tokens == 1002 and row.completion_tokens == 3
    # 2 uncached input tokens at $1/M, 1000 cached at $0.5/M, 3 output at $2/M.
    assert float(row.cost) == pytest.approx((2 * 1 + 1000 * 0.5 + 3 * 2) / 1_000_000)


def test_a_translated_upstreams_cached_tokens_are_reported_as_cache_reads() -> None:
    from providers.base import Usage
    from providers.messages.response import message_usage

    assert message_usage(Usage(100, 5, 105, 60)) == {
        "input_tokens": 40, "output_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 60}


def test_a_system_turn_between_the_turns_reaches_a_translated_upstream_in_place(setup: dict) -> None:
    message = client(setup).messages.create(model="claude-openai", max_tokens=50, messages=[
        {"role": "user", "content": "hello"}, {"role": "system", "content": "Be brief."}])
    assert message.content[0].text == "Echo: hello"
    sent = setup["fakes"]["openai"].last.json["messages"]
    assert sent == [{"role": "user", "content": "hello"}, {"role": "system", "content": "Be brief."}]


def test_a_version_header_that_is_not_printable_ascii_is_refused(setup: dict) -> None:
    response = raw_post(setup, "/v1/messages", orjson.dumps({
        "model": "claude-anthropic", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
        {"anthropic-beta": "caf\u00e9".encode()})
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    assert setup["fakes"]["anthropic"].requests == []


@pytest.mark.parametrize("body, param", [
    ({"max_tokens": 5, "messages": []}, "messages"),
    ({"max_tokens": 0, "messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
    ({"max_tokens": 5, "messages": [{"role": "tool", "content": "hi"}]}, "messages.0.role"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": [{"text": "no type"}]}]}, "messages.0.content"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "stop_sequences": [1]}, "stop_sequences"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "system": 3}, "system"),
])
def test_malformed_bodies_are_refused_before_anything_goes_upstream(setup: dict, body: dict, param: str) -> None:
    response = raw_post(setup, "/v1/messages", orjson.dumps({"model": "claude-gemini", **body}))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error" and param in response.json()["error"]["message"]
    assert setup["fakes"]["gemini"].requests == []
