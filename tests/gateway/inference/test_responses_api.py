"""/v1/responses end to end: the official OpenAI SDK's ``responses.create`` / ``responses.stream`` against
models served by OpenAI (passed through), Anthropic, Gemini and Cloudflare (translated through chat),
every object and event checked against OpenAI's official schema."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest

from gateway.models import RequestLog, StoredResponse
from tests.conftest import make_fake_provider, make_model, make_token
from tests.openai_schema import assert_valid

MODELS = {"openai": "gpt-4o-mini", "cloudflare": "@cf/meta/llama-4-scout-17b-16e-instruct",
          "gemini": "gemini-2.5-flash", "anthropic": "claude-haiku-4-5"}
TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather for a city", "strict": False,
          "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}]


@pytest.fixture
def setup(live_gateway, fakes: dict) -> dict:
    for kind, model in MODELS.items():
        make_model(model, (make_fake_provider(kind, fakes[kind]), model), max_output_tokens=1024,
                   input_price_per_million="1", output_price_per_million="2")
    token = make_token()
    return {"gateway": live_gateway, "fakes": fakes, "token": token,
            "client": openai.OpenAI(base_url=live_gateway.v1, api_key=token, max_retries=0)}


def post(setup: dict, body: dict, token: str | None = None) -> httpx.Response:
    return httpx.post(f"{setup['gateway'].v1}/responses", json=body,
                      headers={"Authorization": f"Bearer {token or setup['token']}"}, timeout=30)


def events_of(text: str) -> list[dict]:
    """The events of a Responses SSE transcript; each ``event:`` line names its data's type."""
    events = []
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if line]
        if not lines:
            continue
        data = [line[5:].strip() for line in lines if line.startswith("data:")]
        names = [line[6:].strip() for line in lines if line.startswith("event:")]
        event = orjson.loads(data[0])
        assert not names or names[0] == event["type"]
        events.append(event)
    return events


def assert_valid_events(events: list[dict]) -> None:
    assert [e["sequence_number"] for e in events] == list(range(events[0]["sequence_number"], len(events)
                                                                + events[0]["sequence_number"]))
    for event in events:
        assert_valid("ResponseStreamEvent", event)
        if "response" in event:
            assert_valid("Response", event["response"])


@pytest.mark.parametrize("kind", MODELS)
def test_text_answer_through_the_sdk_on_every_provider(setup: dict, kind: str) -> None:
    response = setup["client"].responses.create(model=MODELS[kind], input="hello there", instructions="Be brief.")
    assert response.output_text == "Echo: hello there"
    assert response.status == "completed" and response.model == MODELS[kind] and response.instructions == "Be brief."
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens > 0
    raw = post(setup, {"model": MODELS[kind], "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "hi"}]}]})
    assert raw.status_code == 200, raw.text
    assert_valid("Response", raw.json())


@pytest.mark.parametrize("kind", MODELS)
def test_streamed_text_through_the_sdk_on_every_provider(setup: dict, kind: str) -> None:
    with setup["client"].responses.stream(model=MODELS[kind], input="stream me please") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "Echo: stream me please" == final.output_text
    assert final.usage.output_tokens > 0
    raw = post(setup, {"model": MODELS[kind], "input": "stream me", "stream": True})
    events = events_of(raw.text)
    assert_valid_events(events)
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert {"response.output_item.added", "response.content_part.added", "response.output_text.done",
            "response.content_part.done", "response.output_item.done"} <= set(kinds)


@pytest.mark.parametrize("kind", MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_round_trip_on_every_provider(setup: dict, kind: str, stream: bool) -> None:
    client, model = setup["client"], MODELS[kind]
    if stream:
        with client.responses.stream(model=model, input="please call get_weather", tools=TOOLS) as events:
            first = events.get_final_response()
    else:
        first = client.responses.create(model=model, input="please call get_weather", tools=TOOLS)
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert orjson.loads(calls[0].arguments) == {"location": "Paris"}
    second = client.responses.create(model=model, tools=TOOLS, input=[
        {"role": "user", "content": "please call get_weather"}, *[item.model_dump(exclude_none=True)
                                                                  for item in first.output],
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "22C"}])
    assert second.output_text == "Tool said: 22C"
    body = {"model": model, "input": "please call get_weather", "tools": TOOLS, "stream": stream}
    raw = post(setup, body)
    if stream:
        events = events_of(raw.text)
        assert_valid_events(events)
        assert "response.function_call_arguments.done" in [e["type"] for e in events]
    else:
        assert_valid("Response", raw.json())


def test_requests_are_logged_as_responses_with_usage_and_cost(setup: dict) -> None:
    setup["client"].responses.create(model=MODELS["anthropic"], input="hello there")
    setup["gateway"].flush_logs()
    row = RequestLog.objects.get()
    assert row.endpoint == "responses" and row.status_code == 200 and row.provider_kind == "anthropic"
    assert row.completion_tokens > 0 and row.cost > 0
