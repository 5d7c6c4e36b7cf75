"""/v1/responses end to end: the official OpenAI SDK's ``responses.create`` / ``responses.stream`` against
models served by OpenAI (passed through), Anthropic, Gemini and Cloudflare (translated through chat),
every object and event checked against OpenAI's official schema."""

from __future__ import annotations

import time

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


def test_previous_response_id_continues_the_conversation_on_another_provider(setup: dict) -> None:
    client = setup["client"]
    first = client.responses.create(model=MODELS["openai"], input="hello there")
    second = client.responses.create(model=MODELS["anthropic"], input="and again", previous_response_id=first.id)
    assert second.output_text == "Echo: and again" and second.previous_response_id == first.id
    sent = setup["fakes"]["anthropic"].last.json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert "Echo: hello there" in orjson.dumps(sent[1]).decode()
    third = client.responses.create(model=MODELS["openai"], input="once more", previous_response_id=second.id)
    assert third.previous_response_id == second.id  # (the upstream never saw it)
    with client.responses.stream(model=MODELS["openai"], input="x", previous_response_id=second.id) as stream:
        assert stream.get_final_response().previous_response_id == second.id
    upstream = setup["fakes"]["openai"].last.json
    assert "previous_response_id" not in upstream
    texts = orjson.dumps(upstream["input"]).decode()
    assert all(text in texts for text in ("hello there", "Echo: hello there", "and again", "Echo: and again"))
    items = client.responses.input_items.list(third.id, order="asc")
    assert [item.type for item in items.data] == ["message"] * 5


def test_a_stored_response_can_be_read_listed_and_deleted_by_its_token_only(setup: dict) -> None:
    client = setup["client"]
    created = client.responses.create(model=MODELS["gemini"], input="remember me")
    got = client.responses.retrieve(created.id)
    assert got.id == created.id and got.output_text == "Echo: remember me"
    url, mine = f"{setup['gateway'].v1}/responses/{created.id}", {"Authorization": f"Bearer {setup['token']}"}
    assert_valid("Response", httpx.get(url, headers=mine).json())
    listed = httpx.get(f"{url}/input_items", headers=mine).json()
    assert_valid("ResponseItemList", listed)
    assert listed["data"][0]["content"] == [{"type": "input_text", "text": "remember me"}]
    other = openai.OpenAI(base_url=setup["gateway"].v1, api_key=make_token("other"), max_retries=0)
    for attempt in (lambda: other.responses.retrieve(created.id), lambda: other.responses.delete(created.id),
                    lambda: other.responses.input_items.list(created.id),
                    lambda: other.responses.create(model=MODELS["gemini"], input="x", previous_response_id=created.id)):
        with pytest.raises((openai.NotFoundError, openai.BadRequestError)) as caught:
            attempt()
        assert caught.value.body["message"].endswith(f"'{created.id}' not found.")
    assert httpx.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    client.responses.delete(created.id)
    assert not StoredResponse.objects.exists()
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


@pytest.mark.parametrize("stream", [False, True])
def test_store_false_keeps_nothing_and_cannot_be_continued(setup: dict, stream: bool) -> None:
    response = post(setup, {"model": MODELS["cloudflare"], "input": "forget me", "store": False, "stream": stream})
    assert response.status_code == 200
    assert not StoredResponse.objects.exists()
    created = events_of(response.text)[-1]["response"] if stream else response.json()
    assert created["store"] is False
    again = post(setup, {"model": MODELS["cloudflare"], "input": "x", "previous_response_id": created["id"]})
    assert again.status_code == 400 and again.json()["error"]["param"] == "previous_response_id"


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_streamed_response_is_stored_before_the_client_sees_it_complete(setup: dict, kind: str) -> None:
    client = setup["client"]
    with client.responses.stream(model=MODELS[kind], input="first turn") as stream:
        for event in stream:
            if event.type == "response.completed":
                # The client has the end of its answer: continuing must work at once.
                follow = client.responses.create(model=MODELS[kind], input="second turn",
                                                 previous_response_id=event.response.id)
    assert follow.output_text == "Echo: second turn"
    assert StoredResponse.objects.count() == 2


def test_input_items_are_paginated(setup: dict) -> None:
    client = setup["client"]
    created = client.responses.create(model=MODELS["openai"], input=[
        {"role": "user", "content": f"message {i}"} for i in range(5)])
    url, headers = f"{setup['gateway'].v1}/responses/{created.id}/input_items", {
        "Authorization": f"Bearer {setup['token']}"}
    first = httpx.get(url, params={"limit": 2, "order": "asc"}, headers=headers).json()
    assert [i["content"][0]["text"] for i in first["data"]] == ["message 0", "message 1"] and first["has_more"]
    rest = httpx.get(url, params={"limit": 10, "order": "asc", "after": first["last_id"]}, headers=headers).json()
    assert [i["content"][0]["text"] for i in rest["data"]] == ["message 2", "message 3", "message 4"]
    assert not rest["has_more"]
    newest = httpx.get(url, headers=headers).json()
    assert newest["data"][0]["content"][0]["text"] == "message 4"
    for limit in ("0", "101", "x", "9" * 5000):
        assert httpx.get(url, params={"limit": limit}, headers=headers).status_code == 400
    assert httpx.get(url, params={"after": "nope"}, headers=headers).status_code == 400


@pytest.mark.parametrize("kind", MODELS)
def test_a_stream_broken_midway_ends_with_response_failed_or_an_error_event(setup: dict, kind: str) -> None:
    setup["fakes"][kind].break_after = 3
    events = events_of(post(setup, {"model": MODELS[kind], "input": "count one two three four five six",
                                    "stream": True}).text)
    assert_valid_events(events)
    assert events[-1]["type"] in ("response.failed", "error")
    assert not StoredResponse.objects.exists()
    setup["gateway"].flush_logs()
    assert RequestLog.objects.get().status_code >= 500


def test_a_tpm_limit_reserves_max_output_tokens(setup: dict) -> None:
    from gateway.models import ApiToken

    token = make_token("limited")
    ApiToken.objects.filter(name="limited").update(tpm=100)
    body = {"model": MODELS["openai"], "input": "hello", "max_output_tokens": 500}
    refused = post(setup, body, token=token)
    assert refused.status_code == 429 and refused.json()["error"]["type"] == "rate_limit_error"
    assert post(setup, {**body, "max_output_tokens": 20}, token=token).status_code == 200


def test_a_token_limited_to_other_models_is_refused(setup: dict) -> None:
    token = make_token("narrow", allowed_models=MODELS["gemini"])
    assert post(setup, {"model": MODELS["gemini"], "input": "hi"}, token=token).status_code == 200
    refused = post(setup, {"model": MODELS["openai"], "input": "hi"}, token=token)
    assert refused.status_code == 403 and "error" in refused.json()


@pytest.mark.parametrize("body, param", [
    ({"model": "gpt-4o-mini"}, "input"),
    ({"model": "gpt-4o-mini", "input": 5}, "input"),
    ({"model": "gpt-4o-mini", "input": "x", "store": "yes"}, "store"),
    ({"model": "gpt-4o-mini", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "claude-haiku-4-5", "input": "x", "tools": [{"type": "code_interpreter"}]}, "tools[0].type"),
    ({"model": "claude-haiku-4-5", "input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
    ({"model": "gemini-2.5-flash", "input": "x", "tools": [{"type": "custom", "name": "patch", "format": {
        "type": "grammar", "syntax": "lark", "definition": "start: /.+/"}}]}, "tools[0].format"),
])
def test_bad_or_untranslatable_requests_are_400_in_openais_envelope(setup: dict, body: dict, param: str) -> None:
    response = post(setup, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert_valid("ErrorResponse", response.json())


@pytest.mark.parametrize("declared, path", [(True, "/v1/responses"), (False, "/v1/chat/completions")])
def test_an_openai_compatible_account_gets_responses_only_if_it_declares_them(setup: dict, declared: bool,
                                                                             path: str) -> None:
    fake = setup["fakes"]["openai"]
    account = make_fake_provider("openai_compatible", fake, options={"responses": True} if declared else {})
    make_model("local-model", (account, "gpt-4o-mini"))
    response = setup["client"].responses.create(model="local-model", input="hello there")
    assert response.output_text == "Echo: hello there"
    assert fake.last.path == path


@pytest.mark.parametrize("translated", [False, True])
@pytest.mark.parametrize("stream", [False, True])
def test_usage_reports_cached_tokens(setup: dict, translated: bool, stream: bool) -> None:
    fake = setup["fakes"]["openai"]
    fake.cached_tokens = 2
    model = MODELS["openai"]
    if translated:  # through chat completions
        make_model("via-chat", (make_fake_provider("openai_compatible", fake), "gpt-4o-mini"))
        model = "via-chat"
    raw = post(setup, {"model": model, "input": "one two three four", "stream": stream})
    usage = (events_of(raw.text)[-1]["response"] if stream else raw.json())["usage"]
    assert usage["input_tokens_details"]["cached_tokens"] == 2 and usage["input_tokens"] >= 4


def test_prune_deletes_stored_responses_older_than_the_retention(setup: dict, settings) -> None:
    import datetime as dt
    import io

    from django.core.management import call_command
    from django.utils import timezone

    old = setup["client"].responses.create(model=MODELS["openai"], input="old")
    new = setup["client"].responses.create(model=MODELS["openai"], input="new")
    StoredResponse.objects.filter(pk=old.id).update(created_at=timezone.now() - dt.timedelta(days=31))
    out = io.StringIO()
    call_command("gateway_responses", "prune", stdout=out)
    assert "Deleted 1 stored response" in out.getvalue()
    assert list(StoredResponse.objects.values_list("pk", flat=True)) == [new.id]
    settings.GATEWAY = {"RESPONSES_RETENTION_DAYS": 0}
    call_command("gateway_responses", "prune", stdout=out)
    assert StoredResponse.objects.count() == 1


@pytest.mark.parametrize("kind", ["anthropic", "gemini", "cloudflare"])
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("tool, called", [
    ({"type": "namespace", "name": "crm", "description": "The CRM", "tools": [
        {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}]},
     {"type": "function_call", "namespace": "crm", "name": "lookup"}),
    ({"type": "custom", "name": "shell", "description": "Runs a command"}, {"type": "custom_tool_call", "name": "shell"}),
])
def test_namespaced_and_custom_tools_on_translated_providers(setup: dict, kind: str, stream: bool, tool: dict,
                                                             called: dict) -> None:
    flat = "crm__lookup" if tool["type"] == "namespace" else "shell"
    raw = post(setup, {"model": MODELS[kind], "input": f"please call {flat}", "tools": [tool, *TOOLS],
                       "stream": stream})
    assert raw.status_code == 200, raw.text
    if stream:
        events = events_of(raw.text)
        assert_valid_events(events)
        response = events[-1]["response"]
    else:
        response = raw.json()
        assert_valid("Response", response)
    calls = [item for item in response["output"] if item["type"] != "message"]
    assert len(calls) == 1 and {k: calls[0].get(k) for k in called} == called
    assert response["tools"][0] == tool  # the tools are echoed as they were sent


@pytest.mark.parametrize("kind, sent", [("anthropic", None), ("cloudflare", None), ("gemini", "thinkingConfig")])
def test_reasoning_effort_reaches_providers_that_have_it_and_is_left_out_elsewhere(setup: dict, kind: str,
                                                                                  sent: str | None) -> None:
    response = post(setup, {"model": MODELS[kind], "input": "hi", "reasoning": {"effort": "low"},
                            "text": {"verbosity": "low"}})
    assert response.status_code == 200, response.text
    assert response.json()["reasoning"] == {"effort": "low"}
    upstream = orjson.dumps(setup["fakes"][kind].last.json).decode()
    assert (sent in upstream) if sent else ("effort" not in upstream and "thinking" not in upstream)


@pytest.mark.parametrize("stream", [False, True])
def test_usage_is_estimated_when_the_upstream_reports_none(setup: dict, stream: bool) -> None:
    fake = setup["fakes"]["openai"]
    fake.without_usage = True
    make_model("no-usage", (make_fake_provider("openai_compatible", fake), "gpt-4o-mini"))
    raw = post(setup, {"model": "no-usage", "input": "count one two three", "stream": stream})
    response = events_of(raw.text)[-1]["response"] if stream else raw.json()
    assert_valid("Response", response)
    assert response["output"][0]["content"][0]["text"] == "Echo: count one two three"
    deadline = time.monotonic() + 10  # the row is queued once the estimate is done (first use loads the encoding)
    while time.monotonic() < deadline:
        setup["gateway"].flush_logs()
        if RequestLog.objects.exists():
            break
        time.sleep(0.05)
    row = RequestLog.objects.get()
    # "Echo: count one two three" is 6 tokens in o200k_base
    assert row.usage_estimated and row.prompt_tokens > 0 and row.completion_tokens == 6
