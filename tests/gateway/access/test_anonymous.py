"""Anonymous access (GATEWAY_ANONYMOUS): requests without a token, as the one `anonymous` identity, with its
allow-list and limits (and limits per client address), logged and reported as `anonymous`."""

from __future__ import annotations

import io
import threading
from decimal import Decimal

import httpx
import openai
import orjson
import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from gateway.access import authentication
from gateway.access.addresses import client_key
from gateway.models import ANONYMOUS_DIGEST, ApiToken, RequestLog, UsageDaily
from gateway.usage.report import usage_report
from tests.gateway.access.conftest import Limited, eventually, logged

HELLO = [{"role": "user", "content": "hi"}]
CHAT = {"model": "gpt-4o-mini", "messages": HELLO}
# Every /v1 endpoint that takes a token: (method, path, body).
ENDPOINTS = [
    ("POST", "chat/completions", CHAT),
    ("POST", "completions", {"model": "gpt-4o-mini", "prompt": "hi"}),
    ("POST", "embeddings", {"model": "text-embedding-3-small", "input": "hi"}),
    ("GET", "models", None),
    ("GET", "models/gpt-4o-mini", None),
    ("POST", "tokenize", {"model": "gpt-4o-mini", "input": "hi"}),
    ("GET", "model-options", None),
    ("GET", "route-check?model=gpt-4o-mini", None),
]


@pytest.fixture
def anon(limited: Limited, settings) -> Limited:
    """The limited gateway (each limit store) with anonymous access on."""
    settings.GATEWAY = {**settings.GATEWAY, "ANONYMOUS": True}
    return limited


def anonymous(**fields: object) -> ApiToken:
    """The anonymous identity's row, with these fields (saving it clears the gateway's cached copy)."""
    row = ApiToken.anonymous()
    for name, value in fields.items():
        setattr(row, name, value)
    row.save()
    return row


def call(limited: Limited, method: str, path: str, body: dict | None = None, headers: dict | None = None,
         client: httpx.Client | None = None) -> httpx.Response:
    send = client.request if client is not None else httpx.request
    return send(method, f"{limited.gateway.v1}/{path}", content=orjson.dumps(body) if body is not None else None,
                headers={"Content-Type": "application/json", **(headers or {})}, timeout=30)


def sdk(limited: Limited) -> openai.OpenAI:
    """The official SDK sends no key: it insists on one, so it is given a placeholder and the Authorization
    header is omitted on each request (``extra_headers``)."""
    return openai.OpenAI(base_url=limited.gateway.v1, api_key="unused", max_retries=0)


NO_KEY = {"Authorization": openai.Omit()}


@pytest.mark.parametrize("store_name", ["database"], indirect=True)
@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_off_by_default_a_request_without_a_token_gets_401(limited: Limited, method: str, path: str,
                                                           body: dict | None) -> None:
    response = call(limited, method, path, body)
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    assert not ApiToken.objects.filter(digest=ANONYMOUS_DIGEST).exists() and not limited.upstream.requests


@pytest.mark.parametrize("store_name", ["database"], indirect=True)
@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_on_every_endpoint_serves_a_request_without_a_token_but_refuses_a_wrong_one(
        anon: Limited, method: str, path: str, body: dict | None) -> None:
    assert call(anon, method, path, body).status_code == 200
    for wrong in ({"Authorization": "Bearer sk-gw-wrong"}, {"X-AUTH-TOKEN": "your-token"}):
        refused = call(anon, method, path, body, wrong)
        assert refused.status_code == 401 and refused.json()["error"]["message"] == "Incorrect API key provided."
    valid = anon.token("ci")
    assert call(anon, method, path, body, {"Authorization": f"Bearer {valid}"}).status_code == 200


@pytest.mark.parametrize("store_name", ["database"], indirect=True)
def test_the_allow_list_limits_what_anonymous_requests_may_use(anon: Limited) -> None:
    anonymous(allowed_models="gpt-4o-*\ntext-embedding-3-small")
    assert call(anon, "POST", "chat/completions", CHAT).status_code == 200
    refused = call(anon, "POST", "chat/completions", {"model": "free-model", "messages": HELLO})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "model_not_allowed"
    listed = {m["id"] for m in call(anon, "GET", "models").json()["data"]}
    assert listed == {"gpt-4o-mini", "text-embedding-3-small"}
    assert call(anon, "GET", "models/free-model").status_code == 404
    assert len(anon.upstream.requests) == 1


@pytest.mark.parametrize("store_name", ["database"], indirect=True)
def test_switched_off_in_the_admin_a_request_without_a_token_gets_401_saying_so(anon: Limited) -> None:
    anonymous(active=False)
    refused = call(anon, "POST", "chat/completions", CHAT)
    assert refused.status_code == 401 and "Anonymous access is switched off" in refused.json()["error"]["message"]
    assert call(anon, "GET", "models").status_code == 401


def test_rpm_refuses_the_third_request_with_the_sdks_rate_limit_error(anon: Limited) -> None:
    anonymous(rpm=2)
    client = sdk(anon)
    for remaining in ("1", "0"):
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO,
                                                               extra_headers=NO_KEY)
        assert raw.headers["x-ratelimit-limit-requests"] == "2"
        assert raw.headers["x-ratelimit-remaining-requests"] == remaining
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, extra_headers=NO_KEY)
    error = info.value
    assert error.code == "rate_limit_exceeded" and "anonymous access allows 2 requests per minute" in error.message
    assert 1 <= int(error.response.headers["retry-after"]) <= 60
    assert len(anon.upstream.requests) == 2
    # a token's requests are not the anonymous identity's
    assert anon.post(anon.token("ci")).status_code == 200


def test_rpm_per_client_address_counts_each_address_and_trusts_forwarding_only_from_a_trusted_proxy(
        anon: Limited) -> None:
    anonymous(rpm_per_ip=2)
    other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))  # a second client machine
    # from 127.0.0.1 (in uvicorn's FORWARDED_ALLOW_IPS): its own address, then the address it forwards
    assert [call(anon, "POST", "chat/completions", CHAT).status_code for _ in range(3)] == [200, 200, 429]
    refused = call(anon, "POST", "chat/completions", CHAT).json()["error"]
    assert "anonymous access from 127.0.0.1 (a limit per client address) allows 2 requests" in refused["message"]
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    assert [call(anon, "POST", "chat/completions", CHAT, forwarded).status_code for _ in range(3)] == [200, 200, 429]
    # 127.0.0.2 is no trusted proxy: the address it claims to forward is not believed
    spoofed = [call(anon, "POST", "chat/completions", CHAT, {"X-Forwarded-For": f"198.51.100.{n}"}, other)
               for n in range(3)]
    assert [r.status_code for r in spoofed] == [200, 200, 429]
    assert "from 127.0.0.2" in spoofed[2].json()["error"]["message"]
    assert spoofed[1].headers["x-ratelimit-remaining-requests"] == "0"
    other.close()


def test_parallel_per_client_address_holds_one_address_to_its_slots(anon: Limited) -> None:
    anonymous(parallel_per_ip=1)
    anon.upstream.stall(0.5)
    results: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: results.append(call(anon, "POST", "chat/completions", CHAT)))
    thread.start()
    eventually(lambda: len(anon.upstream.requests) == 1)
    refused = call(anon, "POST", "chat/completions", CHAT)
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as other:
        elsewhere = call(anon, "POST", "chat/completions", CHAT, client=other)
    thread.join()
    assert results[0].status_code == 200 and elsewhere.status_code == 200 and refused.status_code == 429
    assert "from 127.0.0.1 (a limit per client address) allows 1 requests in flight" in refused.json()["error"]["message"]


def test_the_budget_counts_what_anonymous_requests_spent_before(anon: Limited) -> None:
    row = anonymous(budget=Decimal("0.01"))
    logged("0.0095", token_id=row.id, token_name="anonymous")
    with pytest.raises(openai.RateLimitError) as info:
        sdk(anon).chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=50, extra_headers=NO_KEY)
    assert info.value.code == "insufficient_quota"
    assert "anonymous access has a total budget of $0.01; $0.0095 is spent" in info.value.message
    assert call(anon, "POST", "chat/completions", {**CHAT, "max_tokens": 5}).status_code == 200


@pytest.mark.parametrize("store_name", ["database"], indirect=True)
def test_requests_are_logged_aggregated_and_reported_as_anonymous(anon: Limited, admin_client: Client) -> None:
    row = anonymous(rpm=1)
    assert call(anon, "POST", "chat/completions", CHAT).status_code == 200
    assert call(anon, "POST", "chat/completions", CHAT).status_code == 429
    assert call(anon, "POST", "chat/completions", CHAT, {"Authorization": "Bearer sk-gw-wrong"}).status_code == 401
    anon.gateway.flush_logs()
    rows = sorted(RequestLog.objects.values_list("status_code", "token_id", "token_name"))
    assert rows == [(200, row.id, "anonymous"), (401, None, ""), (429, row.id, "anonymous")]
    daily = UsageDaily.objects.filter(token_id=row.id)  # (the 429 never reached a provider: a row of its own)
    assert {d.token_name for d in daily} == {"anonymous"} and sum(d.requests for d in daily) == 2
    today = timezone.localdate()
    assert [r["token"] for r in usage_report(today, today, ("token",))] == ["", "anonymous"]
    out = io.StringIO()
    call_command("gateway_usage", "export", "--from", today.isoformat(), "--to", today.isoformat(), "--by", "token",
                 stdout=out)
    assert "\nanonymous,2,1," in out.getvalue()
    page = admin_client.get("/admin/usage/", {"by": "token"}).content.decode()
    assert "anonymous" in page
    assert "anonymous (no token)" in admin_client.get(reverse("admin:gateway_requestlog_changelist")).content.decode()


@pytest.mark.django_db
def test_the_identity_is_created_at_first_use_then_looked_up_once_cached_and_dropped_when_it_changes(
        django_assert_num_queries) -> None:
    created = authentication.anonymous_sync()
    assert created.anonymous and created.name == "anonymous" and created.limits == () and created.per_address is None
    assert created.allowed_models == () and ApiToken.objects.get(digest=ANONYMOUS_DIGEST).id == created.id
    from gateway import invalidation

    invalidation.clear_local()
    with django_assert_num_queries(1):
        authentication.anonymous_sync()
    with django_assert_num_queries(0):
        for _ in range(20):
            authentication.anonymous_sync()
    anonymous(rpm=3, rpm_per_ip=1)
    invalidation.clear_local()  # (the test's transaction never commits: what the commit hook does)
    changed = authentication.anonymous_sync()
    assert changed.limits[0].rpm == 3 and changed.limits[0].owner == "anonymous"
    assert changed.per_address is not None and changed.per_address.rpm == 1


def test_client_addresses_are_counted_by_ipv4_address_and_ipv6_network() -> None:
    assert client_key("203.0.113.7") == "203.0.113.7"
    assert client_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key(None) == client_key("not-an-address") == client_key("") == "unknown"


@pytest.mark.django_db
def test_in_the_admin_the_identity_keeps_its_name_has_per_address_limits_and_cannot_be_deleted(
        admin_client: Client) -> None:
    row = anonymous()
    page = admin_client.get(reverse("admin:gateway_apitoken_change", args=[row.pk])).content.decode()
    assert "Limits per client address" in page and 'name="rpm_per_ip"' in page and 'name="name"' not in page
    assert "anyone who can reach the gateway" in page and "it is off" in page
    response = admin_client.post(reverse("admin:gateway_apitoken_change", args=[row.pk]),
                                 {"active": "on", "rpm": "10", "rpm_per_ip": "2", "budget_period": "total"})
    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.name, row.rpm, row.rpm_per_ip) == ("anonymous", 10, 2)
    assert "10 rpm, 2 rpm per client address" in admin_client.get(
        reverse("admin:gateway_apitoken_changelist")).content.decode()
    assert admin_client.post(reverse("admin:gateway_apitoken_delete", args=[row.pk]), {"post": "yes"}).status_code == 403
    admin_client.post(reverse("admin:gateway_apitoken_changelist"),
                      {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"})
    assert ApiToken.objects.filter(pk=row.pk).exists()
    taken = admin_client.post(reverse("admin:gateway_apitoken_add"), {"name": "Anonymous", "active": "on"})
    assert taken.status_code == 200 and "the anonymous identity&#x27;s name" in taken.content.decode()
