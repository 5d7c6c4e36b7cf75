"""Legacy /v1/completions on chat-only providers (Gemini, Workers AI, Anthropic) end to end: the prompt
becomes one user message and the chat answer comes back as OpenAI's ``text_completion``, whole or streamed."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.conftest import (
    LiveGateway,
    make_fake_provider,
    make_model,
    make_token,
)
from tests.openai_schema import assert_valid, assert_valid_completion_sse

PROVIDERS = ["gemini", "cloudflare", "anthropic"]
UPSTREAM_MODELS = {"gemini": "gemini-2.5-flash", "cloudflare": "@cf/meta/llama-4-scout-17b-16e-instruct",
                   "anthropic": "claude-sonnet-4-20250514"}
MODEL = "writer"


@pytest.fixture(params=PROVIDERS)
def setup(request: pytest.FixtureRequest, live_gateway: LiveGateway, fakes: dict[str, Any]) -> dict:
    """A gateway whose model `writer` is one chat-only provider's chat model."""
    kind = request.param
    names = {"gemini": "gemini-main", "cloudflare": "cf-main", "anthropic": "anthropic-main"}
    account = make_fake_provider(kind, fakes[kind], names[kind])
    make_model(MODEL, (account, UPSTREAM_MODELS[kind]), max_output_tokens=512)
    return {"kind": kind, "gateway": live_gateway, "upstream": fakes[kind], "token": make_token()}


def sdk(setup: dict) -> openai.OpenAI:
    return openai.OpenAI(base_url=setup["gateway"].v1, api_key=setup["token"], max_retries=0)


def post(setup: dict, body: dict) -> httpx.Response:
    return httpx.post(f"{setup['gateway'].v1}/completions", content=orjson.dumps({"model": MODEL, **body}),
                      headers={"Authorization": f"Bearer {setup['token']}"}, timeout=30)


def answer(setup: dict, body: dict) -> dict:
    response = post(setup, body)
    assert response.status_code == 200, response.text
    assert_valid("CreateCompletionResponse", response.json())
    return response.json()


def streamed(setup: dict, body: dict) -> list[dict]:
    response = post(setup, {**body, "stream": True})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    return assert_valid_completion_sse(response.text)


def text_of(events: list[dict]) -> str:
    return "".join(c["text"] for e in events for c in e["choices"])


def finishes(events: list[dict]) -> list[str]:
    return [c["finish_reason"] for e in events for c in e["choices"] if c["finish_reason"]]


def upstream_user_text(setup: dict) -> str:
    """The one user message the chat upstream received, in its native request shape."""
    body = setup["upstream"].last.json
    if setup["kind"] == "gemini":
        assert len(body["contents"]) == 1 and body["contents"][0]["role"] == "user"
        return body["contents"][0]["parts"][0]["text"]
    assert len(body["messages"]) == 1 and body["messages"][0]["role"] == "user"
    content = body["messages"][0]["content"]
    return content if isinstance(content, str) else content[0]["text"]


def test_a_prompt_string_is_answered_as_a_text_completion(setup: dict) -> None:
    data = answer(setup, {"prompt": "Say this is a test"})
    assert upstream_user_text(setup) == "Say this is a test"
    assert data["object"] == "text_completion" and data["id"].startswith("cmpl-") and data["model"] == MODEL
    assert [(c["text"], c["finish_reason"]) for c in data["choices"]] == [("Echo: Say this is a test", "stop")]
    assert data["usage"]["completion_tokens"] == 6 and data["usage"]["total_tokens"] > 6


def test_the_sdk_reads_the_answer_and_a_one_item_prompt_list_is_one_prompt(setup: dict) -> None:
    reply = sdk(setup).completions.create(model=MODEL, prompt=["one two"], max_tokens=2)
    assert reply.choices[0].text == "Echo: one" and reply.choices[0].finish_reason == "length"


def test_a_stream_is_text_completion_chunks_ending_in_done(setup: dict) -> None:
    events = streamed(setup, {"prompt": "a b c"})
    assert text_of(events) == "Echo: a b c" and finishes(events) == ["stop"]
    assert all(e["object"] == "text_completion" and e["choices"] for e in events)
    assert not any(e.get("usage") for e in events)  # not asked for


def test_a_stream_with_include_usage_ends_with_the_usage(setup: dict) -> None:
    events = streamed(setup, {"prompt": "a b c", "stream_options": {"include_usage": True}})
    assert text_of(events) == "Echo: a b c"
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] == 4
    chunks = list(sdk(setup).completions.create(model=MODEL, prompt="x y", stream=True,
                                                stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Echo: x y"
    assert chunks[-1].usage.completion_tokens == 3


def test_echo_puts_the_prompt_before_the_answer_whole_and_streamed(setup: dict) -> None:
    data = answer(setup, {"prompt": "hi there", "echo": True})
    assert data["choices"][0]["text"] == "hi thereEcho: hi there"
    assert text_of(streamed(setup, {"prompt": "hi there", "echo": True})) == "hi thereEcho: hi there"


@pytest.mark.parametrize(("body", "param"), [
    ({"prompt": "x", "suffix": "end"}, "suffix"),
    ({"prompt": ["first", "second"]}, "prompt"),
    ({"prompt": "x", "suffix": "end", "stream": True}, "suffix"),
])
def test_what_a_chat_model_cannot_do_is_400_naming_the_parameter(setup: dict, body: dict, param: str) -> None:
    response = post(setup, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert_valid("ErrorResponse", response.json())
    assert setup["upstream"].requests == []


def test_n_choices_each_get_the_echo_where_the_provider_can_answer_several(setup: dict) -> None:
    body = {"prompt": "hi", "echo": True, "n": 2}
    if setup["kind"] != "gemini":  # Workers AI and Anthropic answer once per request
        response = post(setup, body)
        assert response.status_code == 400 and response.json()["error"]["param"] == "n"
        return
    assert [c["text"] for c in answer(setup, body)["choices"]] == ["hiEcho: hi", "hiEcho: hi"]
    events = streamed(setup, body)
    per_choice = {i: "".join(c["text"] for e in events for c in e["choices"] if c["index"] == i) for i in (0, 1)}
    assert per_choice == {0: "hiEcho: hi", 1: "hiEcho: hi"}
