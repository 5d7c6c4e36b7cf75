"""Log lines: one per finished /v1 call (GATEWAY_LOG_REQUESTS), as text or JSON (GATEWAY_LOG_FORMAT), with
no secret in them: not the API token (only its prefix), no piece of a provider key, no client text that
could forge a line."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Callable, Iterator

import httpx
import orjson
import pytest
from django.test import override_settings

from gateway.log_format import JsonFormatter, TextFormatter
from gateway.usage.observer import observer
from tests.conftest import UPSTREAM_KEY
from tests.test_secret_leaks import echoes, leaks
from tests.test_settings_modes import python, refusal_under


def console() -> logging.Handler:
    """The handler settings.LOGGING configures (on the root logger, with the redacting filter)."""
    return next(h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler))


@pytest.fixture
def request_lines() -> Iterator[Callable[[logging.Formatter], Callable[[], list[str]]]]:
    """Turn the per-call lines on, written with a formatter; returns what was written, after the
    observer thread's next batch."""
    handler, requests = console(), logging.getLogger("gateway.requests")
    out = io.StringIO()
    stream, formatter, level = handler.setStream(out), handler.formatter, requests.level

    def start(chosen: logging.Formatter) -> Callable[[], list[str]]:
        handler.setFormatter(chosen)
        requests.setLevel(logging.INFO)

        def lines() -> list[str]:
            observer.drain()
            return [line for line in out.getvalue().splitlines() if "gateway.requests" in line]
        return lines

    yield start
    handler.setStream(stream)
    handler.setFormatter(formatter)
    requests.setLevel(level)


def post(setup: dict, body: dict, token: str | None = None) -> httpx.Response:
    return httpx.post(f"{setup['gateway'].v1}/chat/completions", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {token or setup['token']}"})


def test_each_call_has_one_json_line_with_its_facts(openai_setup: dict, request_lines) -> None:
    lines = request_lines(JsonFormatter())
    token = openai_setup["token"]
    ok = post(openai_setup, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]})
    assert ok.status_code == 200
    openai_setup["upstream"].fail_next_raw(500, orjson.dumps({"error": {"message": echoes(UPSTREAM_KEY),
                                                                         "code": UPSTREAM_KEY[:12]}}))
    failed = post(openai_setup, {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "x"}]})
    assert failed.status_code >= 500
    forged = post(openai_setup, {"model": f"nope\n{UPSTREAM_KEY}", "messages": [{"role": "user", "content": "x"}]})
    assert forged.status_code == 404
    written = lines()
    assert len(written) == 3
    assert not [line for line in written if leaks(line) or token in line or token[12:] in line]
    first, second, third = (json.loads(line) for line in written)

    assert first["logger"] == "gateway.requests" and first["level"] == "INFO"
    assert first["request_id"] == ok.headers["x-request-id"]
    assert first["token"] == token[:12] and first["team"] is None
    assert first["endpoint"] == "chat.completions" and first["model"] == first["entry"] == "gpt-4o-mini"
    assert first["provider"] == "openai-main" and first["upstream_model"] == "gpt-4o-mini"
    assert first["status"] == 200 and first["attempts"] == 1 and first["stream"] is False
    usage = ok.json()["usage"]
    assert (first["prompt_tokens"], first["completion_tokens"]) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert float(first["cost_usd"]) > 0 and isinstance(first["latency_ms"], int) and first["ttft_ms"] is None
    assert first["time"].startswith(("20", "19"))
    assert second["status"] == failed.status_code and second["stream"] is True and second["error"]
    assert third["status"] == 404 and third["entry"] == "" and third["provider"] == ""
    assert third["model"].startswith("nope\n")  # (JSON escapes the newline: one line still)


def test_text_lines_escape_control_characters(openai_setup: dict, request_lines) -> None:
    lines = request_lines(TextFormatter())
    answer = post(openai_setup, {"model": "evil\nINFO gateway.requests forged 200",
                                 "messages": [{"role": "user", "content": "x"}]})
    assert answer.status_code == 404
    written = lines()
    assert len(written) == 1
    line = written[0]
    assert " INFO gateway.requests chat.completions evil INFO" in line
    assert 'model="evil\\x0aINFO gateway.requests forged 200"' in line
    assert f"token={openai_setup['token'][:12]}" in line and "status=404" in line


@override_settings(GATEWAY={"METRICS": False})
def test_lines_are_off_by_default_outside_development(openai_setup: dict) -> None:
    assert not logging.getLogger("gateway.requests").isEnabledFor(logging.INFO)
    observer.drain()
    post(openai_setup, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]})
    assert observer.pending() == 0  # nothing is even queued


LOGGING = "import json, proxy_site.settings as s; print(json.dumps(s.LOGGING))"


def logging_under(**env: str) -> dict:
    done = python(LOGGING, **env)
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    return {"formatter": config["handlers"]["console"]["formatter"],
            "requests": config["loggers"]["gateway.requests"]["level"]}


def test_the_log_settings() -> None:
    assert logging_under() == {"formatter": "text", "requests": "WARNING"}
    assert logging_under(DJANGO_DEBUG="true") == {"formatter": "text", "requests": "INFO"}
    assert logging_under(GATEWAY_LOG_FORMAT="json") == {"formatter": "json", "requests": "INFO"}
    assert logging_under(GATEWAY_LOG_FORMAT="JSON", GATEWAY_LOG_REQUESTS="false") == {"formatter": "json",
                                                                                    "requests": "WARNING"}
    assert logging_under(GATEWAY_LOG_REQUESTS="true") == {"formatter": "text", "requests": "INFO"}
    assert "GATEWAY_LOG_FORMAT" in refusal_under(GATEWAY_LOG_FORMAT="xml")
    assert "GATEWAY_LOG_REQUESTS" in refusal_under(GATEWAY_LOG_REQUESTS="maybe")


def test_other_records_as_json_keep_their_traceback_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway import redaction

    monkeypatch.setattr(redaction, "_current", redaction.Redactor([UPSTREAM_KEY]))
    try:
        raise RuntimeError(f"upstream said {UPSTREAM_KEY}")
    except RuntimeError:
        record = logging.LogRecord("gateway.x", logging.ERROR, __file__, 1, "failed with %s", (UPSTREAM_KEY,),
                                   exc_info=sys.exc_info())
    line = JsonFormatter().format(record)
    data = json.loads(line)
    assert data["level"] == "ERROR" and data["logger"] == "gateway.x" and "RuntimeError" in data["exc"]
    assert not leaks(line)
