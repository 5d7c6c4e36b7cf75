"""One client view: the same OpenAI SDK script runs unchanged against four models served by four
providers (fakes of OpenAI, Cloudflare Workers AI, Gemini and Anthropic), and every response, chunk
and error passes OpenAI's official schema."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest

from tests.conftest import make_fake_provider, make_model, make_token
from tests.openai_schema import assert_valid, assert_valid_sse

MODELS = {"openai": "gpt-4o-mini", "cloudflare": "@cf/meta/llama-4-scout-17b-16e-instruct",
          "gemini": "gemini-2.5-flash", "anthropic": "claude-haiku-4-5"}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}]


@pytest.fixture
def client(live_gateway, fakes: dict) -> openai.OpenAI:
    for kind, model in MODELS.items():
        make_model(model, (make_fake_provider(kind, fakes[kind]), model), max_output_tokens=1024)
    return openai.OpenAI(base_url=live_gateway.v1, api_key=make_token(), max_retries=0)


def script(client: openai.OpenAI, model: str) -> dict:
    """What a user's program does: chat, stream, and a tool round trip."""
    chat = client.chat.completions.create(model=model, messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}])
    streamed = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello there"}],
                                              stream=True, stream_options={"include_usage": True})
    chunks = list(streamed)
    messages = [{"role": "user", "content": "please call get_weather"}]
    call = client.chat.completions.create(model=model, messages=messages, tools=TOOLS).choices[0].message.tool_calls[0]
    messages += [{"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                 {"role": "tool", "tool_call_id": call.id, "content": "22C"}]
    final = client.chat.completions.create(model=model, messages=messages, tools=TOOLS)
    return {"chat": chat, "chunks": chunks, "call": call, "final": final}


@pytest.mark.parametrize("kind", MODELS)
def test_the_same_sdk_script_works_against_every_provider(client: openai.OpenAI, kind: str) -> None:
    result = script(client, MODELS[kind])
    assert result["chat"].choices[0].message.content == "Echo: hello there"
    assert result["chat"].choices[0].finish_reason == "stop" and result["chat"].model == MODELS[kind]
    assert "".join(c.choices[0].delta.content or "" for c in result["chunks"] if c.choices) == "Echo: hello there"
    assert result["chunks"][-1].usage.completion_tokens == result["chat"].usage.completion_tokens > 0
    assert result["call"].function.name == "get_weather"
    assert orjson.loads(result["call"].function.arguments) == {"location": "Paris"}
    assert result["final"].choices[0].message.content == "Tool said: 22C"


@pytest.mark.parametrize("kind", MODELS)
def test_every_response_chunk_and_error_passes_openais_schema(client: openai.OpenAI, fakes: dict, kind: str) -> None:
    url, headers = f"{client.base_url}chat/completions", {"Authorization": f"Bearer {client.api_key}"}
    body = {"model": MODELS[kind], "messages": [{"role": "user", "content": "please call get_weather"}], "tools": TOOLS}
    assert_valid("CreateChatCompletionResponse", httpx.post(url, json=body, headers=headers).json())
    for options in ({}, {"stream_options": {"include_usage": True}}):
        for text in ("please call get_weather", "one two three"):
            streamed = httpx.post(url, headers=headers, json={**body, **options, "stream": True,
                                                              "messages": [{"role": "user", "content": text}]})
            events = assert_valid_sse("CreateChatCompletionStreamResponse", streamed.text)
            assert any(e.get("usage") for e in events) == bool(options)
    fakes[kind].fail_next(429)
    limited = httpx.post(url, json=body, headers=headers)
    assert limited.status_code == 429
    assert_valid("ErrorResponse", limited.json())
    fakes[kind].fail_next(500)
    failed = httpx.post(url, json=body, headers=headers)
    assert failed.status_code == 502
    assert_valid("ErrorResponse", failed.json())
