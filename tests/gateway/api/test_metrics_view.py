"""GET /metrics: off unless enabled, and then only for a scraper with the token."""

from __future__ import annotations

import httpx
import pytest
from django.test import override_settings

from tests.conftest import LiveGateway
from tests.test_settings_modes import refusal_under, settings_under

METRICS_TOKEN = "metrics-Hq4vT9zL2mX7"
OPS_TOKEN = "ops-Wr8kP3nB6cY1"


def get(gateway: LiveGateway, token: str | None = None, method: str = "GET") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.request(method, f"{gateway.url}/metrics", headers=headers, timeout=10)


def test_metrics_are_a_404_unless_enabled(live_gateway: LiveGateway) -> None:
    assert get(live_gateway).status_code == 404
    with override_settings(GATEWAY={"METRICS_TOKEN": METRICS_TOKEN, "OPS_TOKEN": OPS_TOKEN}):
        answer = get(live_gateway, METRICS_TOKEN)
    assert answer.status_code == 404
    assert "gateway_requests" not in answer.text


@override_settings(GATEWAY={"METRICS": True, "METRICS_TOKEN": METRICS_TOKEN, "OPS_TOKEN": OPS_TOKEN})
def test_enabled_metrics_need_the_metrics_token(live_gateway: LiveGateway) -> None:
    for token in (None, "wrong", OPS_TOKEN, METRICS_TOKEN + "x", METRICS_TOKEN[:-1]):
        answer = get(live_gateway, token)
        assert answer.status_code == 401, token
        assert answer.json()["error"]["code"] == "invalid_metrics_token"
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert "gateway_" not in answer.text
    assert httpx.get(f"{live_gateway.url}/metrics?auth_token={METRICS_TOKEN}", timeout=10).status_code == 401
    answer = get(live_gateway, METRICS_TOKEN)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert answer.headers["cache-control"] == "no-store"
    assert "# TYPE gateway_requests_total counter" in answer.text
    assert "# TYPE gateway_request_duration_seconds histogram" in answer.text
    assert get(live_gateway, METRICS_TOKEN, "HEAD").status_code == 200
    refused = get(live_gateway, METRICS_TOKEN, "POST")
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"


@override_settings(GATEWAY={"METRICS": True, "OPS_TOKEN": OPS_TOKEN})
def test_without_a_metrics_token_the_ops_token_is_accepted(live_gateway: LiveGateway) -> None:
    assert get(live_gateway).status_code == 401
    assert get(live_gateway, OPS_TOKEN).status_code == 200


@override_settings(GATEWAY={"METRICS": True})
def test_with_no_token_configured_no_one_is_answered(live_gateway: LiveGateway) -> None:
    for token in (None, "anything"):
        answer = get(live_gateway, token)
        assert answer.status_code == 403
        assert "GATEWAY_METRICS_TOKEN" in answer.json()["error"]["message"]


def test_the_environment_cannot_enable_metrics_without_a_token() -> None:
    assert "GATEWAY_METRICS_TOKEN" in refusal_under(GATEWAY_METRICS="true")
    settings_under(GATEWAY_METRICS="true", GATEWAY_METRICS_TOKEN="x")  # (settings_under asserts it loads)
    settings_under(GATEWAY_METRICS="true", GATEWAY_OPS_TOKEN="x")
    settings_under(GATEWAY_METRICS="false")


@pytest.mark.parametrize("value", ["yes please", "2"])
def test_a_misspelt_metrics_switch_is_refused(value: str) -> None:
    assert "GATEWAY_METRICS" in refusal_under(GATEWAY_METRICS=value, GATEWAY_METRICS_TOKEN="x")
