"""A client that leaves: the gateway closes its upstream request at once (the fake notes when its client
went away) and logs 499 with the tokens relayed until then (estimated: the upstream said nothing)."""

from __future__ import annotations

import time

import openai
import pytest

from gateway.models import RequestLog
from tests.conftest import LiveGateway, make_model, make_provider, make_token
from tests.fakes.openai_upstream import FakeOpenAI

MESSAGES = [{"role": "user", "content": "one two three four five six"}]
# Generous for a noisy machine: measured at 2-9 ms (the fake looks every 10 ms).
NOTICED_WITHIN = 1.0


@pytest.fixture
def setup(live_gateway: LiveGateway, fake_openai: FakeOpenAI) -> dict[str, object]:
    make_model("gpt-4o-mini", (make_provider("main", base_url=fake_openai.base_url), "gpt-4o-mini"))
    return {"gateway": live_gateway, "upstream": fake_openai, "token": make_token()}


def client(setup: dict, timeout: float = 20) -> openai.OpenAI:
    return openai.OpenAI(base_url=setup["gateway"].v1, api_key=setup["token"], max_retries=0, timeout=timeout)


def upstream_closed_after(setup: dict, left: float) -> float:
    """Seconds from the client leaving to the fake seeing the gateway's request to it go away."""
    fake = setup["upstream"]
    deadline = time.monotonic() + 10
    while not fake.disconnects and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.disconnects, "the gateway kept its upstream request open"
    return fake.disconnects[0] - left


def logged(setup: dict) -> RequestLog:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        setup["gateway"].flush_logs()
        if rows := list(RequestLog.objects.all()):
            return rows[0]
        time.sleep(0.05)
    raise AssertionError("no log row")


def test_a_client_leaving_a_non_streamed_request_closes_the_upstream_request_at_once(setup: dict) -> None:
    setup["upstream"].fault_next("hang")  # a model thinking for a minute before its answer
    with pytest.raises(openai.APITimeoutError):
        client(setup, timeout=0.5).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    left = time.monotonic()
    assert upstream_closed_after(setup, left) < NOTICED_WITHIN
    row = logged(setup)
    assert (row.status_code, row.error_type, row.stream) == (499, "client_closed", False)
    assert row.provider_account == "main" and row.completion_tokens == 0


def test_a_client_leaving_before_a_streams_first_event_closes_the_upstream_request(setup: dict) -> None:
    setup["upstream"].fault_next("hang")
    with pytest.raises(openai.APITimeoutError):
        client(setup, timeout=0.5).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert upstream_closed_after(setup, time.monotonic()) < NOTICED_WITHIN
    assert (logged(setup).status_code, logged(setup).stream) == (499, True)


def test_a_client_leaving_mid_stream_closes_the_upstream_and_logs_the_tokens_it_got(setup: dict) -> None:
    setup["upstream"].fault_next("hang_after", 4)  # role chunk, "Echo:", " one", " two"; then a long pause
    stream = client(setup).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    got = ""
    for chunk in stream:
        got += chunk.choices[0].delta.content or ""
        if got == "Echo: one two":
            break
    stream.close()
    left = time.monotonic()
    assert upstream_closed_after(setup, left) < NOTICED_WITHIN
    row = logged(setup)
    assert (row.status_code, row.error_type) == (499, "client_closed")
    # estimated (o200k_base): "Echo: one two" is 4 tokens, and the prompt is counted too
    assert (row.completion_tokens, row.usage_estimated) == (4, True) and row.prompt_tokens > 0 and row.cost > 0


def test_a_client_leaving_after_the_finish_chunk_but_before_the_usage_chunk_is_logged_with_its_tokens(
        setup: dict) -> None:
    setup["upstream"].fault_next("hang_after", 9)  # role, 7 pieces, the finish chunk: the usage chunk never comes
    stream = client(setup).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                                   stream_options={"include_usage": True})
    text = ""
    for chunk in stream:
        text += chunk.choices[0].delta.content or ""
        if chunk.choices and chunk.choices[0].finish_reason:
            break
    stream.close()
    assert text == "Echo: one two three four five six"
    assert upstream_closed_after(setup, time.monotonic()) < NOTICED_WITHIN
    row = logged(setup)
    assert row.status_code == 499
    assert (row.completion_tokens, row.usage_estimated) == (8, True)  # "Echo" ":" and six words
