"""GET /health: liveness and each provider kind's availability to anyone; the accounts' detail only to operators."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from gateway.api import views
from tests.conftest import make_provider, make_token
from tests.gateway.api.test_openapi import assert_matches

SECRET_NAME = "acct-zebra-7f3a"
SECRET_ERROR = "upstream said: quota exceeded for org-QX81 at https://internal.example:8443"
OPS_TOKEN = "ops-0123456789abcdef-0123456789abcdef"


@pytest.fixture
def accounts(live_gateway) -> dict:
    now = timezone.now()
    make_provider(SECRET_NAME, last_error=SECRET_ERROR, last_error_at=now,
                  last_success_at=now - timedelta(minutes=1))  # failed since it last worked
    make_provider("openai-healthy", last_success_at=now)
    make_provider("claude-no-key", kind="anthropic", api_key="")
    make_provider("gemini-off", kind="gemini", active=False)
    return {"url": f"{live_gateway.url}/health"}


def detail_visible(response: httpx.Response) -> bool:
    return SECRET_NAME in response.text or SECRET_ERROR in response.text or "accounts" in response.json()


def test_anyone_sees_each_kinds_availability_and_nothing_about_the_accounts(accounts: dict) -> None:
    response = httpx.get(accounts["url"])
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "time", "database", "providers"}
    assert body["status"] == "ok" and body["database"] == "ok"
    providers = body["providers"]
    assert providers["openai"] == {"configured": True, "available": True}  # one of its two accounts works
    assert providers["anthropic"] == {"configured": False, "available": False}  # no key
    assert providers["gemini"] == {"configured": False, "available": False}  # switched off
    assert providers["cloudflare"] == {"configured": False, "available": False}  # no account at all
    for text in (SECRET_NAME, "org-QX81", "internal.example", "quota", "openai-healthy", "claude-no-key"):
        assert text not in response.text
    assert response.headers["cache-control"] == "no-store"
    assert {"authorization", "cookie"} <= {v.strip().lower() for v in response.headers["vary"].split(",")}


def test_a_kind_whose_every_account_failed_since_it_worked_is_not_available(accounts: dict) -> None:
    from gateway.models import ProviderAccount

    ProviderAccount.objects.filter(name="openai-healthy").update(last_error_at=timezone.now(), last_error="down")
    assert httpx.get(accounts["url"]).json()["providers"]["openai"] == {"configured": True, "available": False}


def test_a_staff_users_admin_session_sees_the_detail(accounts: dict) -> None:
    staff = get_user_model().objects.create_user("ops", password="x", is_staff=True)
    client = Client()
    client.force_login(staff)
    response = httpx.get(accounts["url"], cookies={"sessionid": client.cookies["sessionid"].value})
    body = response.json()
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    assert_matches(client.get("/v1/openapi.json").json(), "/health", "get", response)  # as documented
    by_name = {a["name"]: a for a in body["accounts"]}
    assert by_name[SECRET_NAME]["last_error"] == SECRET_ERROR and by_name[SECRET_NAME]["kind"] == "openai"
    assert by_name["gemini-off"]["active"] is False and by_name["claude-no-key"]["configured"] is False
    assert set(body["log_writer"]) >= {"queued", "dropped"}
    assert body["providers"]["openai"] == {"configured": True, "available": True}


def test_a_non_staff_session_does_not(accounts: dict) -> None:
    user = get_user_model().objects.create_user("someone", password="x")
    client = Client()
    client.force_login(user)
    assert not detail_visible(httpx.get(accounts["url"], cookies={"sessionid": client.cookies["sessionid"].value}))


def test_the_ops_token_sees_the_detail_and_nothing_else_does(accounts: dict, settings) -> None:
    settings.GATEWAY = {"OPS_TOKEN": OPS_TOKEN}
    url = accounts["url"]
    response = httpx.get(url, headers={"Authorization": f"Bearer {OPS_TOKEN}"})
    assert SECRET_ERROR in response.text and response.json()["accounts"]
    assert detail_visible(httpx.get(url, headers={"Authorization": f"bearer  {OPS_TOKEN}"}))
    api_token = make_token()
    for refused in (
        {"Authorization": f"Bearer {api_token}"},  # an ordinary gateway API token
        {"X-AUTH-TOKEN": api_token},
        {"Authorization": f"Bearer {OPS_TOKEN[:-1]}"},  # a wrong ops token
        {"Authorization": f"Bearer {OPS_TOKEN}x"},
        {"Authorization": f"Basic {OPS_TOKEN}"},
        {"X-AUTH-TOKEN": OPS_TOKEN},  # only the Authorization header carries it
        {"Authorization": "Bearer"},
    ):
        response = httpx.get(url, headers=refused)
        assert response.status_code == 200 and not detail_visible(response), refused
    assert not detail_visible(httpx.get(url, params={"auth_token": OPS_TOKEN}))


def test_no_ops_token_is_accepted_while_the_setting_is_empty(accounts: dict, settings) -> None:
    settings.GATEWAY = {"OPS_TOKEN": ""}
    for authorization in ("Bearer", "Bearer None", "Bearer x"):
        assert not detail_visible(httpx.get(accounts["url"], headers={"Authorization": authorization}))


def test_a_database_that_does_not_answer_is_a_503_and_the_ops_token_still_sees_the_log_writer(
        accounts: dict, settings, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.GATEWAY = {"OPS_TOKEN": OPS_TOKEN}
    monkeypatch.setattr(views, "_database_ok", lambda: False)
    response = httpx.get(accounts["url"])
    assert response.status_code == 503
    assert response.json()["status"] == "degraded" and response.json()["database"] == "unavailable"
    assert response.json()["providers"] == {} and not detail_visible(response)
    operator = httpx.get(accounts["url"], headers={"Authorization": f"Bearer {OPS_TOKEN}"}).json()
    assert operator["accounts"] == [] and "queued" in operator["log_writer"]
