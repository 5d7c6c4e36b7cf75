"""No provider key leaves the gateway: not in answers, streams, headers, the database, log lines,
``/health`` or the admin — whole, halved, upper-cased or as its first 12 characters.

Every provider account holds the known key; the fakes answer successes in each provider's wire
format and, on request, errors that echo the key in every way an upstream has been seen to:
a JSON error message, a stream error event, free text, and response headers.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import httpx
import orjson
import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from gateway.models import ProviderAccount, RequestLog
from tests.conftest import UPSTREAM_KEY, LiveGateway, make_fake_provider, make_model, make_token

KEY = UPSTREAM_KEY
MODELS = {"openai": "gpt-4o-mini", "cloudflare": "@cf/meta/llama-4-scout-17b-16e-instruct",
          "gemini": "gemini-2.5-flash", "anthropic": "claude-haiku-4-5"}
CHAT = {"messages": [{"role": "user", "content": "hello there"}]}


def pieces(key: str) -> list[str]:
    half = len(key) // 2
    return [key, key[:half], key[half:], key.upper(), key[:12]]


def echoes(key: str) -> str:
    """Text carrying the key in the forms upstreams echo it."""
    return f"Invalid Authorization: Bearer {key}. Key {key.upper()} (starts {key[:12]}, ends {key[-20:]})"


def leaks(text: str) -> list[str]:
    low = text.lower()
    return [piece for piece in pieces(KEY) if piece.lower() in low]


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """What the configured log handlers (settings.LOGGING) write, as they write it."""
    out = io.StringIO()
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    previous = [h.setStream(out) for h in handlers]
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.DEBUG)
    yield out
    logging.getLogger().setLevel(level)
    for handler, stream in zip(handlers, previous, strict=True):
        handler.setStream(stream)


def error_stream(kind: str) -> bytes:
    message = echoes(KEY)
    if kind == "anthropic":
        return (b"event: message_start\ndata: " + orjson.dumps({"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [],
            "stop_reason": None, "usage": {"input_tokens": 1, "output_tokens": 0}}}) + b"\n\n"
            b"event: error\ndata: " + orjson.dumps({"type": "error", "error": {"type": "api_error",
                                                                              "message": message}}) + b"\n\n")
    if kind == "gemini":
        return b"data: " + orjson.dumps({"error": {"code": 500, "message": message, "status": "INTERNAL"}}) + b"\n\n"
    if kind == "cloudflare":
        return b"data: " + orjson.dumps({"errors": [{"code": 5000, "message": message}], "success": False}) + b"\n\n"
    return b"data: " + orjson.dumps({"error": {"message": message, "type": "server_error"}}) + b"\n\n"


def test_no_piece_of_a_provider_key_appears_anywhere(live_gateway: LiveGateway, fakes: dict,
                                                    captured_logs: io.StringIO) -> None:
    for kind, model in MODELS.items():
        make_model(model, (make_fake_provider(kind, fakes[kind]), model), max_output_tokens=256)
    token = make_token()
    seen: list[str] = []

    def call(kind: str, stream: bool) -> None:
        response = httpx.post(f"{live_gateway.v1}/chat/completions", headers={"Authorization": f"Bearer {token}"},
                              json={"model": MODELS[kind], "stream": stream, **CHAT}, timeout=30)
        seen.append(f"{response.status_code} {dict(response.headers)} {response.text}")

    echo_headers = {"X-Echo": KEY, "Retry-After": "1", "WWW-Authenticate": f'Bearer error="{KEY}"'}
    for kind, fake in fakes.items():
        call(kind, False)
        call(kind, True)
        for status in (400, 401, 404, 429, 500, 503):
            body = orjson.dumps({"error": {"message": echoes(KEY), "type": "x", "code": KEY[:12]}})
            fake.fail_next_raw(status, body, "application/json", echo_headers)
            call(kind, False)
            fake.fail_next_raw(status, echoes(KEY).encode(), "text/plain", echo_headers)
            call(kind, True)
        fake.fail_next_raw(200, error_stream(kind), "text/event-stream", echo_headers)
        call(kind, True)
        fake.fail_next_raw(200, orjson.dumps({"unexpected": echoes(KEY)}), "application/json", echo_headers)
        call(kind, False)
    live_gateway.flush_logs()
    assert RequestLog.objects.count() == 4 * (2 + 12 + 2)

    # The admin's "check connection" stores the upstream's answer as the account's last error.
    admin = User.objects.create_superuser("root", "root@example.com", "pw")
    browser = Client()
    browser.force_login(admin)
    for account in ProviderAccount.objects.all():
        fakes[account.kind].fail_next_raw(401, orjson.dumps({"error": {"message": echoes(KEY)}}), "application/json",
                                          echo_headers)
        browser.post(reverse("admin:gateway_provideraccount_changelist"),
                     {"action": "check_connection", "_selected_action": [account.pk]}, follow=True)

    pages = [Client().get("/health"), browser.get("/health"), browser.get(reverse("admin:index"))]
    for name in ("provideraccount", "requestlog", "apitoken", "modelentry"):
        changelist = reverse(f"admin:gateway_{name}_changelist")
        pages.append(browser.get(changelist))
        model = apps.get_model("gateway", name)
        for pk in model.objects.values_list("pk", flat=True)[:40]:
            pages.append(browser.get(reverse(f"admin:gateway_{name}_change", args=[pk])))
    for page in pages:
        assert page.status_code == 200, page
        seen.append(f"{dict(page.headers)} {page.content.decode()}")

    database = []
    for model in apps.get_models():
        for row in model.objects.all().values():
            database.append(f"{model.__name__}: {row}")

    found = {
        "responses": [text[:300] for text in seen if leaks(text)],
        "database": [row[:300] for row in database if leaks(row)],
        "log lines": [line[:300] for line in captured_logs.getvalue().splitlines() if leaks(line)],
    }
    assert found == {"responses": [], "database": [], "log lines": []}
