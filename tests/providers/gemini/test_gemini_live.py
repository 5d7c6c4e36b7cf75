"""Gemini end to end: the official OpenAI SDK against the live gateway and a fake Gemini upstream."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.conftest import (
    UPSTREAM_KEY,
    LiveGateway,
    make_fake_provider,
    make_model,
    make_provider,
    make_token,
)
from tests.fakes.gemini_upstream import TOOL_ARGS
from tests.openai_schema import assert_valid, assert_valid_sse

MODEL = "gemini-2.5-flash"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


@pytest.fixture
def gemini(live_gateway: LiveGateway, fakes: dict) -> dict[str, Any]:
    """A gateway with one Gemini account (the fake), the model gemini-2.5-flash and a token."""
    account = make_fake_provider("gemini", fakes["gemini"], "gemini-main")
    make_model(MODEL, (account, MODEL))
    return {"gateway": live_gateway, "upstream": fakes["gemini"], "account": account, "token": make_token()}


def sdk(setup: dict[str, Any]) -> openai.OpenAI:
    return openai.OpenAI(base_url=setup["gateway"].v1, api_key=setup["token"], max_retries=0)


def post(setup: dict[str, Any], body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{setup['gateway'].v1}/chat/completions", content=orjson.dumps({"model": MODEL, **body}),
                      headers={"Authorization": f"Bearer {setup['token']}"}, timeout=30)


def both(setup: dict[str, Any], body: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The plain answer and the streamed chunks (with usage) for one request, each schema-checked."""
    plain = post(setup, body)
    assert plain.status_code == 200, plain.text
    assert_valid("CreateChatCompletionResponse", plain.json())
    streamed = post(setup, {**body, "stream": True, "stream_options": {"include_usage": True}})
    assert streamed.status_code == 200 and streamed.headers["content-type"].startswith("text/event-stream")
    return plain.json(), assert_valid_sse("CreateChatCompletionStreamResponse", streamed.text)


def streamed_text(events: list[dict[str, Any]]) -> str:
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])


def streamed_finish(events: list[dict[str, Any]]) -> str | None:
    return [e["choices"][0]["finish_reason"] for e in events if e["choices"] and e["choices"][0]["finish_reason"]][-1]


def test_plain_text_through_the_sdk_reaches_gemini_in_its_own_format(gemini: dict[str, Any]) -> None:
    completion = sdk(gemini).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello there"}], temperature=0.2, seed=7)
    assert completion.choices[0].message.content == "Echo: hello there"
    assert completion.choices[0].finish_reason == "stop" and completion.model == MODEL
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    upstream = gemini["upstream"].last
    assert upstream.path == f"/v1beta/models/{MODEL}:generateContent"
    assert upstream.headers["x-goog-api-key"] == UPSTREAM_KEY and "key" not in upstream.query
    assert gemini["token"] not in str(upstream.headers)
    assert upstream.json["generationConfig"] == {"temperature": 0.2, "seed": 7}


def test_system_prompt_and_multi_turn_history(gemini: dict[str, Any]) -> None:
    completion = sdk(gemini).chat.completions.create(model=MODEL, messages=[
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"}])
    assert completion.choices[0].message.content == "Echo: second question"
    sent = gemini["upstream"].last.json
    assert sent["systemInstruction"] == {"parts": [{"text": "You are terse."}]}
    assert [(c["role"], c["parts"][0]["text"]) for c in sent["contents"]] == [
        ("user", "first question"), ("model", "first answer"), ("user", "second question")]


def test_tools_round_trip_with_the_same_call_streamed_and_not(gemini: dict[str, Any]) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "please call get_weather"}]
    plain, events = both(gemini, {"messages": messages, "tools": TOOLS})
    call = plain["choices"][0]["message"]["tool_calls"][0]
    assert plain["choices"][0]["finish_reason"] == "tool_calls" == streamed_finish(events)
    assert call["function"]["name"] == "get_weather" and orjson.loads(call["function"]["arguments"]) == TOOL_ARGS
    deltas = [tc for e in events if e["choices"] for tc in e["choices"][0]["delta"].get("tool_calls") or []]
    assert [(d["function"]["name"], orjson.loads(d["function"]["arguments"])) for d in deltas] == [
        ("get_weather", TOOL_ARGS)]
    assert events[-1]["usage"] == plain["usage"]
    messages += [{"role": "assistant", "content": None, "tool_calls": [call]},
                 {"role": "tool", "tool_call_id": call["id"], "content": "22C"}]
    final = sdk(gemini).chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert final.choices[0].message.content == "Tool said: 22C"
    replayed = gemini["upstream"].last.json["contents"]
    assert replayed[1]["parts"][0]["thoughtSignature"]  # Gemini 3 refuses a replayed call without it
    assert replayed[2]["parts"][0]["functionResponse"]["name"] == "get_weather"


def test_image_input_goes_inline(gemini: dict[str, Any]) -> None:
    completion = sdk(gemini).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}])
    assert completion.choices[0].message.content == "Echo: what is this [image/png]"
    assert gemini["upstream"].last.json["contents"][0]["parts"][1] == {"inlineData": {"mimeType": "image/png", "data": PNG}}


def test_a_web_image_url_is_refused_before_reaching_gemini(gemini: dict[str, Any]) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        sdk(gemini).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}])
    assert info.value.body["param"] == "messages[0].content[0].image_url.url"
    assert_valid("ErrorResponse", info.value.response.json())
    assert gemini["upstream"].requests == []


def test_streaming_through_the_sdk_without_and_with_usage(gemini: dict[str, Any]) -> None:
    body = {"messages": [{"role": "user", "content": "count one two three"}], "stream": True}
    plain_stream = post(gemini, body)
    events = assert_valid_sse("CreateChatCompletionStreamResponse", plain_stream.text)
    assert all(e["choices"] for e in events) and "usage" not in events[-1]
    assert streamed_text(events) == "Echo: count one two three"
    assert gemini["upstream"].last.path == f"/v1beta/models/{MODEL}:streamGenerateContent"
    assert gemini["upstream"].last.query == {"alt": "sse"}
    chunks = list(sdk(gemini).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "stream me please"}], stream=True,
        stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: stream me please"
    # the fake repeats cumulative usageMetadata on every chunk: the total is the last, not a sum
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4


@pytest.mark.parametrize(("prompt", "extra", "text", "finish"), [
    ("hello there", {}, "Echo: hello there", "stop"),
    ("one two three four five", {"max_tokens": 3}, "Echo: one two", "length"),
    ("tell me something forbidden", {}, "", "content_filter"),
    ("a prohibited prompt", {}, "", "content_filter"),
])
def test_streamed_and_plain_answers_agree_on_text_finish_and_usage(gemini: dict[str, Any], prompt: str,
                                                                   extra: dict[str, Any], text: str, finish: str) -> None:
    plain, events = both(gemini, {"messages": [{"role": "user", "content": prompt}], **extra})
    assert plain["choices"][0]["message"]["content"] == text == streamed_text(events)
    assert plain["choices"][0]["finish_reason"] == finish == streamed_finish(events)
    assert events[-1]["choices"] == [] and events[-1]["usage"] == plain["usage"]


def test_the_registry_default_output_limit_is_sent_when_the_client_sets_none(gemini: dict[str, Any]) -> None:
    make_model("gemini-short", (gemini["account"], MODEL), max_output_tokens=2)
    completion = sdk(gemini).chat.completions.create(model="gemini-short",
                                                     messages=[{"role": "user", "content": "a b c d"}])
    assert completion.choices[0].message.content == "Echo: a" and completion.choices[0].finish_reason == "length"
    assert gemini["upstream"].last.json["generationConfig"]["maxOutputTokens"] == 2


def test_an_unsupported_parameter_is_a_400_naming_it(gemini: dict[str, Any]) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        sdk(gemini).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                            logit_bias={"50256": -100})
    assert info.value.body["param"] == "logit_bias" and "Google Gemini" in info.value.body["message"]
    assert info.value.code == "unsupported_parameter" and gemini["upstream"].requests == []


@pytest.mark.parametrize(("status", "key_invalid", "error", "expected"), [
    (400, False, openai.BadRequestError, 400),
    (400, True, openai.InternalServerError, 502),
    (403, False, openai.InternalServerError, 502),
    (429, False, openai.RateLimitError, 429),
    (500, False, openai.InternalServerError, 502),
    (503, False, openai.InternalServerError, 503),
])
def test_upstream_errors_reach_the_sdk_as_openai_errors(gemini: dict[str, Any], status: int, key_invalid: bool,
                                                        error: type[Exception], expected: int) -> None:
    gemini["upstream"].fail_next(status, key_invalid=key_invalid)
    with pytest.raises(error) as info:
        sdk(gemini).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    response = info.value.response
    assert response.status_code == expected
    assert_valid("ErrorResponse", response.json())
    if key_invalid or status == 403:
        assert response.json()["error"]["code"] == "upstream_auth_failed"
    if status == 429:
        assert response.headers["retry-after"] == "7"


def test_a_wrong_provider_key_is_a_502_that_shows_no_key(gemini: dict[str, Any]) -> None:
    bad = make_provider("gemini-bad", kind="gemini", base_url=gemini["upstream"].url + "/v1beta",
                        api_key="AIzaWRONGkey-0123456789abcdef")
    make_model("gemini-bad", (bad, MODEL))
    response = post(gemini, {"model": "gemini-bad", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 502 and response.json()["error"]["code"] == "upstream_auth_failed"
    assert "AIzaWRONG" not in response.text and "cdef" not in response.text
    assert_valid("ErrorResponse", response.json())


def test_a_malformed_upstream_body_is_a_502(gemini: dict[str, Any]) -> None:
    gemini["upstream"].fail_next_raw(200, b"<html>proxy login</html>", "text/html")
    response = post(gemini, {"messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 502 and "<html>" not in response.text
    assert_valid("ErrorResponse", response.json())


def test_a_stream_cut_midway_ends_with_an_error_event(gemini: dict[str, Any]) -> None:
    gemini["upstream"].break_stream_after(2)
    response = post(gemini, {"messages": [{"role": "user", "content": "a b c d e f"}], "stream": True})
    events = [orjson.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data: {")]
    assert "error" in events[-1] and "[DONE]" not in response.text
    assert_valid("ErrorResponse", events[-1])
