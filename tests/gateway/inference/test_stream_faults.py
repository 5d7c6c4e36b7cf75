"""Upstream faults, as a client of the official OpenAI SDK sees them.

Before the first byte reaches the client (no headers, headers and nothing else, a cut connection, a
web page, a malformed first event, a non-streamed body that breaks after its headers), a fault is
the deployment's: the next one answers. After it, a stream ends with an OpenAI error event (the SDK
raises ``APIError``) and its log row says what happened, with the tokens relayed until then.
"""

from __future__ import annotations

import openai
import pytest

from gateway.models import ProviderAccount, RequestLog
from tests.conftest import LiveGateway, make_fake_provider, make_model, make_provider, make_token
from tests.fakes.openai_upstream import FakeOpenAI

MESSAGES = [{"role": "user", "content": "one two three four five six"}]
UPSTREAM_MODEL = {"anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash",
                  "cloudflare": "@cf/meta/llama-3.1-8b-instruct"}
ANSWER = "Echo: one two three four five six"


@pytest.fixture
def two(live_gateway: LiveGateway, fake_openai: FakeOpenAI) -> dict[str, object]:
    """gpt-4o-mini on two deployments of the fake (the primary with short timeouts), and a token."""
    primary = make_provider("primary", base_url=fake_openai.base_url, first_byte_timeout=0.5, read_timeout=0.5)
    backup = make_provider("backup", base_url=fake_openai.base_url)
    make_model("gpt-4o-mini", (primary, "gpt-4o-mini"), (backup, "gpt-4o-mini"))
    return {"gateway": live_gateway, "upstream": fake_openai, "token": make_token()}


def client(setup: dict) -> openai.OpenAI:
    return openai.OpenAI(base_url=setup["gateway"].v1, api_key=setup["token"], max_retries=0, timeout=20)


def row(setup: dict) -> RequestLog:
    setup["gateway"].flush_logs()
    return RequestLog.objects.get()


def streamed_text(setup: dict) -> str:
    stream = client(setup).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


BEFORE_THE_FIRST_BYTE = [
    ("hang", 0),  # no headers within first_byte_timeout
    ("hang_after", 0),  # headers, then no body within first_byte_timeout
    ("drop_after", 0),  # headers, then the connection is cut
    ("html", 0),  # a login page with 200
    ("malformed_after", 0),  # the first event is not JSON
    ("error_after", 0),  # the first event is the upstream's error
    ("truncate_after", 0),  # headers and a clean end: no event at all
]


@pytest.mark.parametrize(("kind", "after"), BEFORE_THE_FIRST_BYTE)
def test_a_stream_that_fails_before_its_first_event_is_answered_by_the_next_deployment(
        two: dict, kind: str, after: int) -> None:
    two["upstream"].fault_next(kind, after)
    assert streamed_text(two) == ANSWER
    logged = row(two)
    assert (logged.status_code, logged.provider_account, logged.attempts) == (200, "backup", 2)
    assert logged.completion_tokens == 7 and not logged.usage_estimated


@pytest.mark.parametrize(("kind", "after"), [
    ("hang", 0),
    ("hang_after", 40),  # part of the body, then nothing within read_timeout
    ("drop_after", 40),  # part of a body whose Content-Length says more, then the connection is cut
    ("truncate_after", 40),  # a complete HTTP answer whose JSON is cut
    ("html", 0),
])
def test_a_non_streamed_answer_whose_body_fails_is_answered_by_the_next_deployment(
        two: dict, kind: str, after: int) -> None:
    two["upstream"].fault_next(kind, after)
    completion = client(two).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content == ANSWER
    logged = row(two)
    assert (logged.status_code, logged.provider_account, logged.attempts) == (200, "backup", 2)


@pytest.mark.parametrize(("kind", "status", "code"), [
    ("hang_after", 504, "upstream_timeout"),
    ("drop_after", 502, "upstream_unreachable"),
    ("truncate_after", 502, "upstream_malformed"),
])
def test_a_non_streamed_body_failure_is_logged_with_its_real_status_and_is_no_success(
        live_gateway: LiveGateway, fake_openai: FakeOpenAI, kind: str, status: int, code: str) -> None:
    only = make_provider("only", base_url=fake_openai.base_url, read_timeout=0.5)
    make_model("gpt-4o-mini", (only, "gpt-4o-mini"))
    setup = {"gateway": live_gateway, "token": make_token()}
    fake_openai.fault_next(kind, 40)
    with pytest.raises(openai.APIStatusError) as raised:
        client(setup).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raised.value.status_code == status and raised.value.code == code
    logged = row(setup)
    assert (logged.status_code, logged.error_type) == (status, code)
    only.refresh_from_db()
    assert only.last_success_at is None and only.last_error_at is not None


MID_STREAM = [
    ("hang_after", 504, "upstream_timeout"),  # nothing more within read_timeout
    ("drop_after", 502, "upstream_stream_failed"),
    ("malformed_after", 502, "upstream_malformed"),
    ("error_after", 502, "upstream_stream_error"),  # the upstream's own error event (code null)
    ("truncate_after", 502, "stream_incomplete"),  # a clean end without the last events
]


@pytest.mark.parametrize(("kind", "status", "code"), MID_STREAM)
def test_a_stream_that_fails_midway_ends_with_an_error_the_sdk_raises(
        two: dict, kind: str, status: int, code: str) -> None:
    two["upstream"].fault_next(kind, 4)  # the role chunk and "Echo:", " one", " two" were sent
    received = []
    with pytest.raises(openai.APIError) as raised:
        stream = client(two).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "Echo: one two"
    assert raised.value.code == code and raised.value.message
    logged = row(two)
    assert (logged.status_code, logged.error_type, logged.provider_account) == (status, code, "primary")
    assert len(two["upstream"].requests) == 1  # nothing is sent twice once the client has bytes
    # the tokens relayed, estimated (o200k_base): "Echo: one two" is 4; the prompt too
    assert (logged.completion_tokens, logged.usage_estimated) == (4, True) and logged.prompt_tokens > 0
    assert logged.cost > 0


@pytest.mark.parametrize("kind", ["anthropic", "gemini", "cloudflare"])
@pytest.mark.parametrize(("fault", "code"), [("drop_after", "upstream_stream_failed"),
                                             ("truncate_after", "stream_incomplete")])
def test_every_provider_kinds_stream_that_fails_midway_ends_with_an_error(
        live_gateway: LiveGateway, fakes: dict, kind: str, fault: str, code: str) -> None:
    make_model("m", (make_fake_provider(kind, fakes[kind]), UPSTREAM_MODEL[kind]))
    setup = {"gateway": live_gateway, "token": make_token()}
    fakes[kind].fault_next(fault, 4)  # (Anthropic: message_start, content_block_start and two deltas)
    with pytest.raises(openai.APIError) as raised:
        for _ in client(setup).chat.completions.create(model="m", messages=MESSAGES, stream=True):
            pass
    assert raised.value.code == code
    logged = row(setup)
    assert (logged.status_code, logged.error_type) == (502, code)
    # the text relayed before the failure is counted (Anthropic's early count covers only the prompt)
    assert logged.completion_tokens > 1 and logged.prompt_tokens > 0


@pytest.mark.parametrize("kind", ["anthropic", "gemini", "cloudflare"])
def test_every_provider_kinds_malformed_event_ends_the_stream_with_an_error(
        live_gateway: LiveGateway, fakes: dict, kind: str) -> None:
    make_model("m", (make_fake_provider(kind, fakes[kind]), UPSTREAM_MODEL[kind]))
    setup = {"gateway": live_gateway, "token": make_token()}
    fakes[kind].fault_next("malformed_after", 2)
    with pytest.raises(openai.APIError):
        for _ in client(setup).chat.completions.create(model="m", messages=MESSAGES, stream=True):
            pass
    assert row(setup).status_code == 502


def test_the_failed_attempt_before_a_success_does_not_count_as_the_accounts_success(two: dict) -> None:
    two["upstream"].fault_next("drop_after", 40)
    client(two).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    row(two)
    assert ProviderAccount.objects.get(name="primary").last_success_at is None
    assert ProviderAccount.objects.get(name="backup").last_success_at is not None
