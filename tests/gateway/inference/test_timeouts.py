"""Per-account timeouts: connecting, the answer's first bytes, and between chunks. A hung upstream holds
a client no longer than them: a 504 in OpenAI's envelope before the first byte (or the next deployment's
answer), an error event mid-stream."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from gateway.models import ProviderAccount, RequestLog
from tests.conftest import LiveGateway, make_model, make_provider, make_token
from tests.fakes.openai_upstream import FakeOpenAI
from tests.openai_schema import assert_valid

MESSAGES = [{"role": "user", "content": "hi"}]
# Far above the timeouts below (0.5 s) and far below the hang (60 s): the timeout, not the hang, ended it.
WELL_BEFORE_THE_HANG = 15


def client(setup: dict) -> openai.OpenAI:
    return openai.OpenAI(base_url=setup["gateway"].v1, api_key=setup["token"], max_retries=0, timeout=30)


def row(setup: dict) -> RequestLog:
    setup["gateway"].flush_logs()
    return RequestLog.objects.get()


@pytest.fixture
def unconnectable() -> Iterator[str]:
    """A base URL whose connections never open: a listening socket whose backlog is full."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):  # (the connection is pending)
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/v1"
    for sock in [*fillers, server]:
        sock.close()


def test_a_connection_that_does_not_open_is_a_504_after_connect_timeout(live_gateway: LiveGateway,
                                                                        unconnectable: str) -> None:
    make_model("gpt-4o-mini", (make_provider("nowhere", base_url=unconnectable, connect_timeout=0.5), "gpt-4o-mini"))
    setup = {"gateway": live_gateway, "token": make_token()}
    started = time.monotonic()
    response = httpx.post(f"{live_gateway.v1}/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES},
                          headers={"Authorization": f"Bearer {setup['token']}"}, timeout=30)
    assert time.monotonic() - started < WELL_BEFORE_THE_HANG
    assert response.status_code == 504
    assert_valid("ErrorResponse", response.json())
    error = response.json()["error"]
    assert error["code"] == "upstream_timeout" and "connect_timeout" in error["message"]
    assert (row(setup).status_code, row(setup).error_type) == (504, "upstream_timeout")


def test_an_unconnectable_deployment_is_followed_by_the_next(live_gateway: LiveGateway, unconnectable: str,
                                                             fake_openai: FakeOpenAI) -> None:
    nowhere = make_provider("nowhere", base_url=unconnectable, connect_timeout=0.5)
    make_model("gpt-4o-mini", (nowhere, "gpt-4o-mini"), (make_provider("works", base_url=fake_openai.base_url),
                                                         "gpt-4o-mini"))
    setup = {"gateway": live_gateway, "token": make_token()}
    assert client(setup).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices[0].message.content
    assert (row(setup).provider_account, row(setup).attempts) == ("works", 2)


@pytest.fixture
def hung(live_gateway: LiveGateway, fake_openai: FakeOpenAI) -> dict[str, object]:
    account = make_provider("slow", base_url=fake_openai.base_url, first_byte_timeout=0.5, read_timeout=0.5)
    make_model("gpt-4o-mini", (account, "gpt-4o-mini"))
    return {"gateway": live_gateway, "upstream": fake_openai, "token": make_token()}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("fault", ["hang", "hang_after"])  # no headers / headers and nothing else
def test_no_first_bytes_within_first_byte_timeout_is_a_504_in_openais_envelope(
        hung: dict, stream: bool, fault: str) -> None:
    hung["upstream"].fault_next(fault, 0, seconds=60)
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as raised:
        client(hung).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=stream)
    assert time.monotonic() - started < WELL_BEFORE_THE_HANG
    assert raised.value.status_code == 504 and raised.value.code == "upstream_timeout"
    assert_valid("ErrorResponse", raised.value.response.json())
    assert "first_byte_timeout" in raised.value.message
    assert (row(hung).status_code, row(hung).stream) == (504, stream)


def test_a_stream_that_pauses_longer_than_read_timeout_ends_with_a_timeout_error_event(hung: dict) -> None:
    hung["upstream"].fault_next("hang_after", 2, seconds=60)
    started = time.monotonic()
    with pytest.raises(openai.APIError) as raised:
        for _ in client(hung).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
            pass
    assert time.monotonic() - started < WELL_BEFORE_THE_HANG
    assert raised.value.code == "upstream_timeout" and "read_timeout" in raised.value.message
    assert row(hung).status_code == 504


def test_a_slow_stream_within_its_timeouts_is_relayed_whole(hung: dict) -> None:
    hung["upstream"].event_delay = 0.2  # each pause shorter than read_timeout, the whole longer than it
    stream = client(hung).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Echo: hi"
    assert row(hung).status_code == 200


def test_a_new_account_has_the_documented_default_timeouts(db: None) -> None:
    account = ProviderAccount.objects.create(name="defaults", kind="openai")
    assert (account.connect_timeout, account.first_byte_timeout, account.read_timeout) == (10, 120, 300)
