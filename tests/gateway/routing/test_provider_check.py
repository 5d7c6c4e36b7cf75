"""The admin's "check connection", answered by a MockTransport (no server)."""

from __future__ import annotations

import orjson
import pytest
from django.test import Client
from django.urls import reverse

from gateway.inference import transport
from gateway.inference.transport import MockResponse, MockTransport, UpstreamUnavailable
from gateway.models import ProviderAccount
from gateway.routing.provider_check import check_connection
from providers.base import UpstreamRequest
from tests.conftest import UPSTREAM_KEY, make_provider

pytestmark = pytest.mark.django_db

BASE_URL = "https://api.openai.invalid/v1"


def models_or_401(request: UpstreamRequest) -> MockResponse:
    if request.headers.get("Authorization") != f"Bearer {UPSTREAM_KEY}":
        error = {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                           "code": "invalid_api_key", "param": None}}
        return MockResponse(401, {"content-type": "application/json"}, orjson.dumps(error))
    return MockResponse(200, {"content-type": "application/json"}, b'{"object": "list", "data": []}')


def test_a_good_account_is_ok_and_stamped_with_its_success() -> None:
    account = make_provider("good", base_url=BASE_URL)
    mock = MockTransport(models_or_401)
    with transport.use(mock):
        assert check_connection(account) == (True, "OK (HTTP 200).")
    [sent] = mock.requests
    assert (sent.method, sent.url, sent.body) == ("GET", f"{BASE_URL}/models", None)
    assert sent.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    account.refresh_from_db()
    assert account.last_success_at is not None and account.last_error_at is None


def test_an_unreachable_upstream_is_reported_and_recorded() -> None:
    account = make_provider("down", base_url=BASE_URL)

    def refused(request: UpstreamRequest) -> MockResponse:
        raise UpstreamUnavailable("Could not reach the upstream: ClientConnectorError.")

    with transport.use(MockTransport(refused)):
        ok, message = check_connection(account)
    assert (ok, message) == (False, "Could not reach the upstream: ClientConnectorError.")
    account.refresh_from_db()
    assert account.last_success_at is None and account.last_error == message


def test_the_admin_action_reports_each_account_without_its_key(admin_client: Client) -> None:
    good = make_provider("good", base_url=BASE_URL)
    bad = make_provider("bad", base_url=BASE_URL, api_key="sk-wrong-key-000000000000")
    with transport.use(MockTransport(models_or_401)):
        response = admin_client.post(reverse("admin:gateway_provideraccount_changelist"),
                                     {"action": "check_connection_action", "_selected_action": [good.pk, bad.pk]},
                                     follow=True)
    shown = [str(m) for m in response.context["messages"]]
    assert "good: OK (HTTP 200)." in shown
    assert any(m.startswith("bad: HTTP 401: ") for m in shown) and "sk-wrong" not in " ".join(shown)
    assert ProviderAccount.objects.get(pk=bad.pk).last_error.startswith("HTTP 401: ")
