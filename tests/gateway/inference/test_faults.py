"""Fault injection: one of two deployments of a model broken in each way an upstream breaks. Clients (the
official SDK, no retries of its own) see only answers; the broken deployment goes into cooldown (shown
in /health's detail), is no longer called until its cooldown ends, and its account's last error says why.
Fallback models take over when every deployment of a model fails, within the token's allow-list."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal

import httpx
import openai
import pytest
from django.test import override_settings

from gateway.models import ProviderAccount, RequestLog
from gateway.routing import cooldowns as cooldown_module
from tests.conftest import UPSTREAM_KEY, make_model, make_provider, make_token
from tests.fakes.openai_upstream import ERRORS, FakeOpenAI, error_body
from tests.openai_schema import assert_valid

OPS_TOKEN = "ops-faults-0123456789abcdef0123456789"
COOLDOWN = {"COOLDOWN_FAILURES": 2, "COOLDOWN_WINDOW_SECONDS": 60, "COOLDOWN_SECONDS": 30, "OPS_TOKEN": OPS_TOKEN}


@pytest.fixture(scope="module")
def _second_server() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(UPSTREAM_KEY)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def broken(_second_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """A second fake OpenAI upstream (its own port and request count), for the deployment that breaks."""
    _second_server.reset()
    yield _second_server
    _second_server.reset()


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The cooldowns' clock, moved by the test."""
    found = Clock()
    monkeypatch.setattr(cooldown_module, "clock", found)
    return found


@pytest.fixture
def pair(live_gateway, fake_openai: FakeOpenAI, broken: FakeOpenAI, clock: Clock) -> Iterator[dict]:
    """gpt-4o-mini served first by the account `flaky` (the `broken` fake), then by `steady`."""
    flaky = make_provider("flaky", base_url=broken.base_url, read_timeout=0.5, first_byte_timeout=0.5)
    steady = make_provider("steady", base_url=fake_openai.base_url)
    make_model("gpt-4o-mini", (flaky, "gpt-4o-mini"), (steady, "gpt-4o-mini"))
    with override_settings(GATEWAY=COOLDOWN):
        yield {"gateway": live_gateway, "broken": broken, "steady": fake_openai, "token": make_token(),
               "clock": clock}


def sdk(setup: dict) -> openai.OpenAI:
    return openai.OpenAI(base_url=setup["gateway"].v1, api_key=setup["token"], max_retries=0)


def ask(setup: dict, stream: bool = False, model: str = "gpt-4o-mini") -> str:
    client = sdk(setup)
    messages = [{"role": "user", "content": "hello there"}]
    if stream:
        chunks = client.chat.completions.create(model=model, messages=messages, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return client.chat.completions.create(model=model, messages=messages).choices[0].message.content


def health(setup: dict) -> dict:
    response = httpx.get(f"{setup['gateway'].url}/health", headers={"Authorization": f"Bearer {OPS_TOKEN}"})
    assert response.status_code == 200
    return response.json()


def chat_calls(server: FakeOpenAI) -> int:
    return sum(1 for r in server.requests if r.path == "/v1/chat/completions")


def openai_error(status: int) -> bytes:
    return error_body(*ERRORS[status])


BREAKAGES = {
    "500": lambda s: s.fail_every(500, openai_error(500)),
    "503": lambda s: s.fail_every(503, openai_error(503)),
    "429 without Retry-After": lambda s: s.fail_every(429, openai_error(429)),
    "429 with Retry-After": lambda s: s.fail_every(429, openai_error(429), headers={"Retry-After": "120"}),
    "malformed JSON": lambda s: s.fail_every(200, b'{"id": "chatcmpl-1", "choices": [{"mess'),
    "wrong content type": lambda s: s.fail_every(200, b"<html><body>Bad gateway</body></html>", "text/html"),
    "hang before headers": lambda s: s.stall(5),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_a_broken_deployment_is_cooled_and_clients_only_see_answers(pair: dict, breakage: str) -> None:
    broken, steady, clock = pair["broken"], pair["steady"], pair["clock"]
    BREAKAGES[breakage](broken)
    for _ in range(5):
        assert ask(pair) == "Echo: hello there"
    assert chat_calls(broken) == 2  # two failures (COOLDOWN_FAILURES), then no more calls
    assert chat_calls(steady) == 5
    (cooling,) = health(pair)["cooldowns"]
    assert cooling["provider"] == "flaky" and cooling["model"] == "gpt-4o-mini" and cooling["reason"]
    retry_after = breakage == "429 with Retry-After"
    expected = clock.now + (120 if retry_after else 30)
    assert datetime.fromisoformat(cooling["until"]).timestamp() == pytest.approx(expected, abs=1)
    pair["gateway"].flush_logs()
    rows = list(RequestLog.objects.order_by("id"))
    assert [row.attempts for row in rows] == [2, 2, 1, 1, 1]
    assert {row.provider_account for row in rows} == {"steady"} and {row.status_code for row in rows} == {200}
    account = ProviderAccount.objects.get(name="flaky")
    assert account.last_error and account.last_error_at is not None  # the dead deployment's own error
    state = {a["name"]: a for a in health(pair)["accounts"]}["flaky"]
    assert state["last_error"] == account.last_error

    clock.now += 31 if not retry_after else 121  # the cooldown is over: the deployment is tried again
    assert ask(pair) == "Echo: hello there"
    assert chat_calls(broken) == 3
    broken.reset()  # it works again (and its request count starts again): it answers, which clears its count
    assert ask(pair) == "Echo: hello there"
    assert chat_calls(broken) == 1 and health(pair)["cooldowns"] == []


@pytest.mark.parametrize("breakage", ["500", "429 with Retry-After", "hang before headers"])
def test_a_stream_moves_to_the_next_deployment_before_its_first_byte(pair: dict, breakage: str) -> None:
    BREAKAGES[breakage](pair["broken"])
    for _ in range(4):
        assert ask(pair, stream=True) == "Echo: hello there"
    assert chat_calls(pair["broken"]) == 2
    assert [c["provider"] for c in health(pair)["cooldowns"]] == ["flaky"]


def test_a_stream_broken_after_its_headers_ends_in_an_error_and_counts_towards_the_cooldown(pair: dict) -> None:
    """Its first events have reached the client: it cannot move elsewhere, but its deployment is cooled."""
    for _ in range(2):
        pair["broken"].fault_next("drop_after", after=2)
    for _ in range(2):
        with pytest.raises(openai.APIError):
            ask(pair, stream=True)
    # (counted when the gateway has finished the request, just after the client saw its end)
    deadline = time.monotonic() + 10
    while not health(pair)["cooldowns"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [c["provider"] for c in health(pair)["cooldowns"]] == ["flaky"]
    assert ask(pair, stream=True) == "Echo: hello there"
    assert chat_calls(pair["broken"]) == 2


def test_a_cooled_deployment_is_still_tried_when_nothing_else_is_left(pair: dict) -> None:
    BREAKAGES["500"](pair["broken"])
    for _ in range(2):
        ask(pair)
    pair["steady"].fail_every(500, openai_error(500))  # now the other one breaks too
    pair["broken"].reset()  # ... and the cooled one works again (its request count starts again)
    assert ask(pair) == "Echo: hello there"
    assert chat_calls(pair["broken"]) == 1 and chat_calls(pair["steady"]) == 3


def test_a_request_error_is_not_a_deployment_failure(pair: dict) -> None:
    """A 400 is the request's fault: no other deployment is tried, nothing is cooled."""
    pair["broken"].fail_every(400, openai_error(400))
    for _ in range(3):
        with pytest.raises(openai.BadRequestError):
            ask(pair)
    assert chat_calls(pair["steady"]) == 0 and health(pair)["cooldowns"] == []


# --- Fallback models --------------------------------------------------------------------------------

@pytest.fixture
def fallbacks(live_gateway, fake_openai: FakeOpenAI, broken: FakeOpenAI, clock: Clock) -> Iterator[dict]:
    """claude-sonnet-4-5 (on the broken fake) falls back to gpt-4.1 (on the working one)."""
    dead = make_provider("dead", base_url=broken.base_url)
    steady = make_provider("steady", base_url=fake_openai.base_url)
    make_model("claude-sonnet-4-5", (dead, "claude-sonnet-4-5"), (dead, "claude-sonnet-4-5-alt"),
               fallbacks="gpt-4.1", input_price_per_million="3", output_price_per_million="15")
    make_model("gpt-4.1", (steady, "gpt-4.1-2025-04-14"), input_price_per_million="2", output_price_per_million="8")
    broken.fail_every(503, openai_error(503))
    with override_settings(GATEWAY=COOLDOWN):
        yield {"gateway": live_gateway, "broken": broken, "steady": fake_openai, "clock": clock}


def test_when_every_deployment_fails_the_fallback_model_answers(fallbacks: dict) -> None:
    fallbacks["token"] = make_token()
    assert ask(fallbacks, model="claude-sonnet-4-5") == "Echo: hello there"
    assert chat_calls(fallbacks["broken"]) == 2
    assert fallbacks["steady"].last.json["model"] == "gpt-4.1-2025-04-14"
    fallbacks["gateway"].flush_logs()
    row = RequestLog.objects.get()
    assert (row.requested_model, row.resolved_model, row.provider_account) == (
        "claude-sonnet-4-5", "gpt-4.1-2025-04-14", "steady")
    assert row.attempts == 3 and row.status_code == 200
    # priced as the model that answered: gpt-4.1's 2 / 8 USD per million tokens
    assert row.cost == Decimal(row.prompt_tokens * 2 + row.completion_tokens * 8) / 10**6


def test_a_token_that_may_not_use_the_fallback_does_not_get_it(fallbacks: dict) -> None:
    fallbacks["token"] = make_token(allowed_models="claude-*")
    with pytest.raises(openai.InternalServerError) as raised:
        ask(fallbacks, model="claude-sonnet-4-5")
    assert raised.value.status_code == 503
    assert chat_calls(fallbacks["steady"]) == 0
    fallbacks["gateway"].flush_logs()
    assert RequestLog.objects.get().attempts == 2


def test_when_everything_fails_the_client_gets_the_last_error_in_openais_envelope(fallbacks: dict) -> None:
    fallbacks["steady"].fail_every(500, openai_error(500))
    token = make_token()
    response = httpx.post(f"{fallbacks['gateway'].v1}/chat/completions", headers={"Authorization": f"Bearer {token}"},
                          json={"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]})
    # gpt-4.1's error (its upstream's 500, a 502 from the gateway), the last one tried; not the first (503)
    assert response.status_code == 502
    assert_valid("ErrorResponse", response.json())
    assert "processing your request" in response.json()["error"]["message"]
    fallbacks["gateway"].flush_logs()
    row = RequestLog.objects.get()
    assert row.attempts == 3 and row.status_code == 502 and row.provider_account == "steady" and row.error_message
    assert ProviderAccount.objects.get(name="dead").last_error  # the earlier attempts' account too


def test_attempts_are_bounded_by_max_attempts(fallbacks: dict) -> None:
    fallbacks["steady"].fail_every(500, openai_error(500))
    fallbacks["token"] = make_token()
    with override_settings(GATEWAY={**COOLDOWN, "MAX_ATTEMPTS": 2}), pytest.raises(openai.APIStatusError):
        ask(fallbacks, model="claude-sonnet-4-5")
    assert chat_calls(fallbacks["broken"]) == 2 and chat_calls(fallbacks["steady"]) == 0
    fallbacks["gateway"].flush_logs()
    assert RequestLog.objects.get().attempts == 2


def test_fallbacks_in_a_cycle_are_each_tried_once(live_gateway, broken: FakeOpenAI) -> None:
    dead = make_provider("dead", base_url=broken.base_url)
    make_model("a", (dead, "a"), fallbacks="b")
    make_model("b", (dead, "b"), fallbacks="a")
    broken.fail_every(500, openai_error(500))
    client = openai.OpenAI(base_url=live_gateway.v1, api_key=make_token(), max_retries=0)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="a", messages=[{"role": "user", "content": "hi"}])
    assert [r.json["model"] for r in broken.requests] == ["a", "b"]
