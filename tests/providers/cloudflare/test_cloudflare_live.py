"""Cloudflare Workers AI end to end: the official OpenAI SDK against a live gateway and a fake Workers AI."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest

from gateway.routing.provider_check import check_connection
from tests.conftest import (
    UPSTREAM_KEY,
    LiveGateway,
    make_fake_provider,
    make_model,
    make_token,
)
from tests.fakes.cloudflare_upstream import FakeCloudflare
from tests.openai_schema import assert_valid, assert_valid_sse, sse_events

SCOUT = "@cf/meta/llama-4-scout-17b-16e-instruct"
RUN_PATH = f"/client/v4/accounts/acc123/ai/run/{SCOUT}"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}]


@pytest.fixture
def fake(fakes: dict) -> FakeCloudflare:
    return fakes["cloudflare"]


@pytest.fixture
def setup(live_gateway: LiveGateway, fake: FakeCloudflare) -> dict:
    """A gateway whose default Workers AI model (registry default 1024 output tokens) is served by the fake."""
    account = make_fake_provider("cloudflare", fake, "cf-main")
    make_model(SCOUT, (account, SCOUT), max_output_tokens=1024, context_window=131000)
    return {"gateway": live_gateway, "upstream": fake, "account": account, "token": make_token()}


def sdk(setup: dict) -> openai.OpenAI:
    return openai.OpenAI(base_url=setup["gateway"].v1, api_key=setup["token"], max_retries=0)


def post(setup: dict, body: dict) -> httpx.Response:
    return httpx.post(f"{setup['gateway'].v1}/chat/completions", content=orjson.dumps({"model": SCOUT, **body}),
                      headers={"Authorization": f"Bearer {setup['token']}"}, timeout=30)


def answer(setup: dict, body: dict) -> dict:
    """The non-streamed answer, validated against OpenAI's schema."""
    response = post(setup, body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert_valid("CreateChatCompletionResponse", data)
    return data


def streamed(setup: dict, body: dict) -> list[dict]:
    response = post(setup, {**body, "stream": True})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    return assert_valid_sse("CreateChatCompletionStreamResponse", response.text)


def collect(events: list[dict]) -> dict:
    """What a client assembles from a stream: text, tool calls, finish reason, usage."""
    calls: dict[int, dict] = {}
    for event in events:
        for delta in (tc for e in event["choices"] for tc in e["delta"].get("tool_calls") or []):
            call = calls.setdefault(delta["index"], {"name": "", "arguments": ""})
            call["name"] += (delta.get("function") or {}).get("name") or ""
            call["arguments"] += (delta.get("function") or {}).get("arguments") or ""
    finishes = [e["choices"][0]["finish_reason"] for e in events if e["choices"] and e["choices"][0]["finish_reason"]]
    usage = [e["usage"] for e in events if e.get("usage")]
    return {"text": "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"]),
            "tool_calls": [calls[i] for i in sorted(calls)], "finish_reason": finishes, "usage": usage}


def test_plain_text_through_the_sdk_reaches_the_accounts_run_endpoint(setup: dict) -> None:
    completion = sdk(setup).chat.completions.create(
        model=SCOUT, messages=[{"role": "user", "content": "hello there"}], temperature=0.2, seed=7)
    assert completion.choices[0].message.content == "Echo: hello there"
    assert completion.choices[0].finish_reason == "stop" and completion.model == SCOUT
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens == 5
    upstream = setup["upstream"].last
    assert upstream.path == RUN_PATH and upstream.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert setup["token"] not in str(upstream.headers)
    assert upstream.json == {"messages": [{"role": "user", "content": "hello there"}], "temperature": 0.2, "seed": 7,
                             "max_tokens": 1024}
    answer(setup, {"messages": [{"role": "user", "content": "hi"}]})


def test_system_prompt_and_content_parts_arrive_as_strings(setup: dict) -> None:
    data = answer(setup, {"messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}]}]})
    assert data["choices"][0]["message"]["content"] == "Echo: part one\npart two"
    assert setup["upstream"].last.json["messages"] == [{"role": "system", "content": "You are terse."},
                                                       {"role": "user", "content": "part one\npart two"}]


def test_multi_turn_conversation_is_sent_whole_and_answers_the_last_turn(setup: dict) -> None:
    messages = [{"role": "user", "content": "first question"}, {"role": "assistant", "content": "Echo: first question"},
                {"role": "user", "content": "second question"}]
    completion = sdk(setup).chat.completions.create(model=SCOUT, messages=messages)
    assert completion.choices[0].message.content == "Echo: second question"
    assert setup["upstream"].last.json["messages"] == messages


def test_tools_round_trip_streamed_and_not(setup: dict) -> None:
    client = sdk(setup)
    messages = [{"role": "user", "content": "please call get_weather"}]
    reply = client.chat.completions.create(model=SCOUT, messages=messages, tools=TOOLS)
    call = reply.choices[0].message.tool_calls[0]
    assert reply.choices[0].finish_reason == "tool_calls" and reply.choices[0].message.content is None
    assert call.function.name == "get_weather" and orjson.loads(call.function.arguments) == {"location": "Paris"}
    assert setup["upstream"].last.json["tools"] == TOOLS
    stream = collect(streamed(setup, {"messages": messages, "tools": TOOLS}))
    assert stream["tool_calls"] == [{"name": "get_weather", "arguments": call.function.arguments}]
    assert stream["finish_reason"] == ["tool_calls"]
    messages += [{"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                 {"role": "tool", "tool_call_id": call.id, "content": "22C"}]
    final = client.chat.completions.create(model=SCOUT, messages=messages, tools=TOOLS)
    assert final.choices[0].message.content == "Tool said: 22C"
    sent = setup["upstream"].last.json["messages"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent[2] == {"role": "tool", "content": "22C", "tool_call_id": call.id, "name": "get_weather"}


def test_stream_through_the_sdk_with_and_without_include_usage(setup: dict) -> None:
    client = sdk(setup)
    prompt = [{"role": "user", "content": "stream me please"}]
    chunks = list(client.chat.completions.create(model=SCOUT, messages=prompt, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Echo: stream me please"
    assert all(c.choices for c in chunks) and chunks[-1].choices[0].finish_reason == "stop"
    assert setup["upstream"].last.json["stream"] is True and "stream_options" not in setup["upstream"].last.json
    chunks = list(client.chat.completions.create(model=SCOUT, messages=prompt, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    events = streamed(setup, {"messages": prompt, "stream_options": {"include_usage": True}})
    assert events[-1]["choices"] == [] and events[-1]["usage"]["total_tokens"] == 7
    assert all(e["choices"] for e in streamed(setup, {"messages": prompt}))


@pytest.mark.parametrize("tools", [None, TOOLS])
@pytest.mark.parametrize("prompt", ["say something short", "please call get_weather", "one two three four five"])
def test_streamed_and_plain_answers_agree(setup: dict, prompt: str, tools: list | None) -> None:
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": 5, **({"tools": tools} if tools else {})}
    plain = answer(setup, body)
    stream = collect(streamed(setup, {**body, "stream_options": {"include_usage": True}}))
    choice = plain["choices"][0]
    calls = [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]}
             for c in choice["message"].get("tool_calls") or []]
    assert stream["text"] == (choice["message"]["content"] or "")
    assert stream["tool_calls"] == calls
    assert stream["finish_reason"] == [choice["finish_reason"]]
    assert stream["usage"] == [plain["usage"]]
    assert choice["finish_reason"] == ("tool_calls" if tools and "call" in prompt else
                                       "length" if "five" in prompt else "stop")


def test_stream_cut_by_the_upstream_ends_with_an_error_event(setup: dict) -> None:
    setup["upstream"].break_stream_after(2)
    response = post(setup, {"messages": [{"role": "user", "content": "one two three four"}], "stream": True})
    events, done = sse_events(response.text)
    assert not done and "error" in events[-1]
    assert_valid("ErrorResponse", events[-1])
    assert [e["choices"][0]["delta"].get("content") for e in events[:-1]] == ["Echo:", " one"]


def test_max_tokens_cuts_the_answer_with_finish_reason_length(setup: dict) -> None:
    completion = sdk(setup).chat.completions.create(
        model=SCOUT, messages=[{"role": "user", "content": "one two three four"}], max_tokens=3)
    assert completion.choices[0].message.content == "Echo: one two"
    assert completion.choices[0].finish_reason == "length" and setup["upstream"].last.json["max_tokens"] == 3
    sdk(setup).chat.completions.create(model=SCOUT, messages=[{"role": "user", "content": "x"}],
                                       max_completion_tokens=9)
    assert setup["upstream"].last.json["max_tokens"] == 9


def test_registry_default_max_tokens_is_sent_so_workers_ai_does_not_stop_at_256(setup: dict) -> None:
    long_prompt = " ".join(f"w{i}" for i in range(400))
    data = answer(setup, {"messages": [{"role": "user", "content": long_prompt}]})
    assert setup["upstream"].last.json["max_tokens"] == 1024
    assert data["choices"][0]["message"]["content"] == f"Echo: {long_prompt}"
    assert data["choices"][0]["finish_reason"] == "stop" and data["usage"]["completion_tokens"] == 401


def test_without_any_default_workers_ai_stops_at_256_and_the_gateway_says_length(setup: dict) -> None:
    make_model("@cf/meta/llama-3.1-8b-instruct", (setup["account"], "@cf/meta/llama-3.1-8b-instruct"))
    long_prompt = " ".join(f"w{i}" for i in range(400))
    data = answer(setup, {"model": "@cf/meta/llama-3.1-8b-instruct",
                          "messages": [{"role": "user", "content": long_prompt}]})
    assert "max_tokens" not in setup["upstream"].last.json
    assert data["usage"]["completion_tokens"] == 256 and data["choices"][0]["finish_reason"] == "length"


def error_of(setup: dict, expected: type[openai.APIStatusError], **kwargs: object) -> openai.APIStatusError:
    with pytest.raises(expected) as info:
        sdk(setup).chat.completions.create(model=SCOUT, messages=[{"role": "user", "content": "hi"}], **kwargs)
    assert_valid("ErrorResponse", info.value.response.json())
    return info.value


def test_upstream_400_reaches_the_client_as_a_bad_request(setup: dict) -> None:
    setup["upstream"].fail_next(400)
    error = error_of(setup, openai.BadRequestError)
    assert "Invalid data" in error.message
    error = error_of(setup, openai.BadRequestError, temperature=1.5, extra_body={"top_k": 99})  # the fake checks Workers AI's ranges
    assert "top_k" in error.message


@pytest.mark.parametrize("status", [401, 403])
def test_upstream_auth_failure_is_a_502_not_the_clients_401(setup: dict, status: int) -> None:
    setup["upstream"].fail_next(status)
    error = error_of(setup, openai.InternalServerError)
    assert error.status_code == 502 and error.code == "upstream_auth_failed" and UPSTREAM_KEY not in error.message


def test_wrong_token_configured_is_a_502(setup: dict) -> None:
    setup["account"].set_api_key("cf-wrong-token")
    setup["account"].save()
    error = error_of(setup, openai.InternalServerError)
    assert error.code == "upstream_auth_failed" and "cf-main" in error.message


def test_upstream_capacity_429_is_a_rate_limit(setup: dict) -> None:
    setup["upstream"].fail_next(429)
    error = error_of(setup, openai.RateLimitError)
    assert "Capacity temporarily exceeded" in error.message and error.code == "rate_limit_exceeded"


def test_upstream_500_and_malformed_body_are_502s(setup: dict) -> None:
    setup["upstream"].fail_next(500)
    assert error_of(setup, openai.InternalServerError).status_code == 502
    setup["upstream"].fail_next_raw(200, b"<html>not json</html>", "text/html")
    error = error_of(setup, openai.InternalServerError)
    assert error.status_code == 502 and "not a Workers AI result" in error.message


def test_unsupported_parameter_is_refused_before_calling_upstream(setup: dict) -> None:
    error = error_of(setup, openai.BadRequestError, n=2)
    assert error.param == "n" and error.code == "unsupported_parameter" and "Cloudflare" in error.message
    assert setup["upstream"].requests == []


def test_unknown_model_and_missing_account_id_are_explained(setup: dict) -> None:
    make_model("@cf/*", (setup["account"], ""))
    with pytest.raises(openai.NotFoundError) as info:
        sdk(setup).chat.completions.create(model="@cf/nobody/nothing", messages=[{"role": "user", "content": "hi"}])
    assert info.value.code == "model_not_found" and "@cf/nobody/nothing" in info.value.message
    setup["account"].options = {}
    setup["account"].save()
    error = error_of(setup, openai.InternalServerError)
    assert error.status_code == 500 and "cf-main" in error.message and "account_id" in error.message


def test_check_connection_searches_one_model_of_the_account(setup: dict) -> None:
    ok, message = check_connection(setup["account"])
    assert ok, message
    assert setup["upstream"].last.path == "/client/v4/accounts/acc123/ai/models/search"
    assert setup["upstream"].last.query == {"per_page": "1"}
