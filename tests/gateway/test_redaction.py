"""The redactor: no piece of a known key, in any case, survives; ordinary text is left alone."""

from __future__ import annotations

import logging

import httpx
import orjson
import pytest

from gateway import redaction
from gateway.inference import transport
from gateway.inference.transport import MockResponse, MockTransport
from gateway.redaction import MARK, RedactLogRecords, Redactor
from tests.conftest import LiveGateway, make_model, make_provider, make_token

KEY = "sk-proj-Xy7Qw2Er9Ty4Ui6Op1As3Df5Gh8Jk0Lz"


def forms(key: str) -> list[str]:
    """The ways an upstream has been seen to echo a key."""
    half = len(key) // 2
    return [key, key.upper(), key.lower(), key[:12], key[half:], key[:half], key[5:], f"Bearer {key}"]


@pytest.mark.parametrize("form", forms(KEY))
def test_every_form_of_a_key_is_replaced_in_text_and_bytes(form: str) -> None:
    redactor = Redactor([KEY])
    text = f'{{"error": {{"message": "Invalid header: Authorization={form}; retry"}}}}'
    for out in (redactor.text(text), redactor.data(text.encode()).decode()):
        assert MARK in out
        for piece in (KEY, KEY.upper(), KEY[:12], KEY[len(KEY) // 2:], KEY[: len(KEY) // 2]):
            assert piece not in out and piece.lower() not in out.lower()


def test_ordinary_answers_pass_unchanged_and_the_same_object_is_returned() -> None:
    redactor = Redactor([KEY, "AIzaSyD-0123456789abcdefghijklmnopqrstuv"])
    chunk = (b'data: {"id":"chatcmpl-abc123def456ghi789","object":"chat.completion.chunk","created":1733000000,'
             b'"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"content":"Internationalization '
             b'is a long word"},"finish_reason":null}]}\n\n')
    assert redactor.data(chunk) is chunk
    assert Redactor([]).data(chunk) is chunk


def test_log_records_are_redacted_including_tracebacks() -> None:
    redaction.install([KEY])
    try:
        try:
            raise ValueError(f"upstream said {KEY.upper()}")
        except ValueError:
            record = logging.LogRecord("x", logging.ERROR, __file__, 1, "key was %s", (KEY[4:],), None)
            import sys

            record.exc_info = sys.exc_info()
        RedactLogRecords().filter(record)
        line = logging.Formatter().format(record)
    finally:
        redaction.install([])
    assert KEY[4:] not in line and KEY.upper() not in line and MARK in line


def test_a_key_echoed_by_the_upstream_never_reaches_the_client(live_gateway: LiveGateway) -> None:
    """Error body, passthrough stream error event, header: the client sees none of the key."""
    make_model("gpt-4o-mini", (make_provider("echoing", base_url="https://echo.invalid/v1", api_key=KEY), "m"))
    token = make_token()

    def echo(request):
        auth = request.headers["Authorization"]
        if b'"stream":true' in request.body:
            event = b"data: " + orjson.dumps({"error": {"message": f"bad {auth}", "type": "x"}}) + b"\n\n"
            first = (b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":'
                     b'[{"index":0,"delta":{"content":"' + KEY[3:].encode() + b'"},"finish_reason":null}]}\n\n')
            return MockResponse(200, {"Content-Type": "text/event-stream"}, iter([first, event]))
        return MockResponse(429, {"Retry-After": KEY[:12]}, orjson.dumps({"error": {"message": f"{auth} {KEY.upper()}"}}))

    redaction.install([])  # the registry load (on the first request) must teach the redactor the key
    with transport.use(MockTransport(echo)):
        for stream in (False, True):
            response = httpx.post(f"{live_gateway.v1}/chat/completions",
                                  json={"model": "gpt-4o-mini", "stream": stream,
                                        "messages": [{"role": "user", "content": "hi"}]},
                                  headers={"Authorization": f"Bearer {token}"})
            seen = (response.text + str(response.headers)).lower()
            for piece in forms(KEY)[:7]:
                assert piece.lower() not in seen, (stream, piece)
