"""Each limit kind, for a token and for a team, through the live gateway and the official OpenAI SDK."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

import httpx
import openai
import pytest
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from gateway.access import authentication, stores
from gateway.access.policy import TokenLimits
from tests.gateway.access.conftest import UNITS_PER_TOKEN, Limited, eventually, logged

HELLO = [{"role": "user", "content": "hi"}]


def test_rpm_per_token_refuses_the_fourth_request_with_a_rate_limit_error(limited: Limited) -> None:
    token = limited.token(rpm=3)
    client = limited.sdk(token)
    seen = []
    for _ in range(3):
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)
        seen.append((raw.headers["x-ratelimit-limit-requests"], raw.headers["x-ratelimit-remaining-requests"]))
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    assert seen == [("3", "2"), ("3", "1"), ("3", "0")]
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    error = info.value
    assert error.code == "rate_limit_exceeded" and error.type == "rate_limit_error"
    assert "token 'ci' allows 3 requests per minute" in error.message and "resets in" in error.message
    assert 1 <= int(error.response.headers["retry-after"]) <= 60
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert len(limited.upstream.requests) == 3  # the refused request never went upstream


def test_a_team_rpm_is_shared_by_its_tokens(limited: Limited) -> None:
    limited.team(rpm=3)
    first, second = limited.token("a", team="platform"), limited.token("b", team="platform", rpm=100)
    assert [limited.post(first).status_code for _ in range(2)] == [200, 200]
    ok = limited.post(second)
    assert ok.status_code == 200 and ok.headers["x-ratelimit-limit-requests"] == "3"  # the team's: less left
    refused = limited.post(second)
    assert refused.status_code == 429 and "team 'platform' allows 3 requests" in refused.json()["error"]["message"]


def test_tpm_refuses_what_does_not_fit_and_a_request_larger_than_the_limit(limited: Limited) -> None:
    token = limited.token(tpm=100)
    too_large = limited.post(token, max_tokens=500)
    body = too_large.json()["error"]
    assert too_large.status_code == 429 and body["code"] == "rate_limit_exceeded"
    assert "Request too large" in body["message"] and too_large.headers["x-should-retry"] == "false"
    assert not limited.upstream.requests
    ok = limited.post(token, max_tokens=60)
    assert ok.status_code == 200 and ok.headers["x-ratelimit-limit-tokens"] == "100"
    assert int(ok.headers["x-ratelimit-remaining-tokens"]) < 40  # 60 output tokens and the prompt reserved


def test_a_team_tpm_is_shared_and_its_message_says_whose(limited: Limited) -> None:
    limited.team(tpm=150)
    first, second = limited.token("a", team="platform"), limited.token("b", team="platform")
    limited.upstream.stall(0.5)  # both in flight at once: the first one's reservation still holds
    results: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: results.append(limited.post(first, max_tokens=80)))
    thread.start()
    eventually(lambda: len(limited.upstream.requests) == 1)
    refused = limited.post(second, max_tokens=80)
    thread.join()
    assert results[0].status_code == 200 and refused.status_code == 429
    assert "team 'platform' allows 150 tokens per minute" in refused.json()["error"]["message"]


def test_parallel_limits_requests_in_flight_and_frees_the_slot_at_the_end(limited: Limited) -> None:
    token = limited.token(parallel=1)
    limited.upstream.stall(0.5)
    results: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: results.append(limited.post(token)))
    thread.start()
    eventually(lambda: len(limited.upstream.requests) == 1)
    refused = limited.post(token)
    thread.join()
    assert results[0].status_code == 200 and refused.status_code == 429
    assert refused.headers["retry-after"] == "1" and "allows 1 requests in flight" in refused.json()["error"]["message"]
    limited.upstream.stall(0)
    eventually(lambda: limited.post(token).status_code == 200)


def test_a_teams_parallel_limit_covers_all_its_tokens(limited: Limited) -> None:
    limited.team(parallel=1)
    first, second = limited.token("a", team="platform"), limited.token("b", team="platform")
    limited.upstream.stall(0.5)
    thread = threading.Thread(target=limited.post, args=(first,))
    thread.start()
    eventually(lambda: len(limited.upstream.requests) == 1)
    refused = limited.post(second)
    thread.join()
    assert refused.status_code == 429 and "team 'platform'" in refused.json()["error"]["message"]


def spend(token_id: int | None, cost: str, team_id: int | None = None) -> None:
    logged(cost, token_id=token_id, team_id=team_id)


def test_an_exhausted_budget_is_insufficient_quota_through_the_sdk(limited: Limited) -> None:
    token = limited.token(budget=Decimal("0.01"))
    from gateway.models import ApiToken

    spend(ApiToken.objects.get(name="ci").id, "0.0095")  # spent earlier, as the request log says
    with pytest.raises(openai.RateLimitError) as info:
        limited.sdk(token).chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=50)
    error = info.value
    assert error.code == "insufficient_quota" and error.type == "insufficient_quota"
    assert "token 'ci' has a total budget of $0.01" in error.message and "$0.0095 is spent" in error.message
    assert error.response.headers["x-should-retry"] == "false" and not limited.upstream.requests
    assert limited.post(token, max_tokens=5).status_code == 200  # a cheaper request still fits


def test_a_team_budget_counts_every_tokens_spend(limited: Limited) -> None:
    team = limited.team(budget=Decimal("0.01"), budget_period="monthly")
    spend(None, "0.0095", team_id=team.id)
    token = limited.token("b", team="platform")
    refused = limited.post(token, max_tokens=50)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "insufficient_quota"
    assert "team 'platform' has a monthly budget" in refused.json()["error"]["message"]
    assert "retry-after" in refused.headers  # a monthly budget resets on the 1st


def test_an_unpriced_model_under_a_budget_is_refused_before_any_upstream_call(limited: Limited) -> None:
    token = limited.token(budget=Decimal(5))
    refused = limited.post(token, {"model": "free-model", "messages": HELLO})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "model_not_priced"
    assert not limited.upstream.requests


def frozen_clock(monkeypatch: pytest.MonkeyPatch, *start: int) -> list[float]:
    moment = [datetime(*start, tzinfo=UTC).timestamp()]
    monkeypatch.setattr(TokenLimits, "clock", staticmethod(lambda: moment[0]))
    return moment


def test_rpm_resets_when_the_minute_ends(limited: Limited, monkeypatch: pytest.MonkeyPatch) -> None:
    moment = frozen_clock(monkeypatch, 2030, 5, 6, 10, 20, 58)
    token = limited.token(rpm=1)
    first = limited.post(token)
    assert first.status_code == 200 and first.headers["x-ratelimit-reset-requests"] == "2s"
    refused = limited.post(token)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "2"
    assert "resets in 2s" in refused.json()["error"]["message"]
    moment[0] += 2
    assert limited.post(token).status_code == 200


def test_a_daily_budget_starts_again_at_midnight(limited: Limited, monkeypatch: pytest.MonkeyPatch) -> None:
    moment = frozen_clock(monkeypatch, 2030, 5, 6, 23, 59, 58)
    token = limited.token(budget=Decimal("0.0005"), budget_period="daily")  # 50 tokens at $10/M
    # the prompt estimate of these bodies is 8 tokens; the fake answers "Echo: hi" (1 + 2 tokens)
    assert limited.post(token, max_tokens=30).status_code == 200  # reserves 38 tokens, uses 3
    eventually(lambda: limited.used(token, "budget", now=moment[0]) == 3 * UNITS_PER_TOKEN)
    refused = limited.post(token, max_tokens=40)  # 3 spent + 48 reserved > 50
    error = refused.json()["error"]
    assert refused.status_code == 429 and error["code"] == "insufficient_quota"
    assert refused.headers["retry-after"] == "2" and "2030-05-07 00:00 UTC" in error["message"]
    moment[0] += 3
    assert limited.post(token, max_tokens=40).status_code == 200


def test_every_response_of_a_limited_token_has_the_headers_errors_and_streams_too(
        limited: Limited, monkeypatch: pytest.MonkeyPatch) -> None:
    frozen_clock(monkeypatch, 2030, 5, 6, 10, 20, 0)  # (a minute that ends mid-test would start the count again)
    token = limited.token(rpm=10, tpm=10_000)
    for response in (limited.post(token, {"model": "gpt-4o-mini"}),  # 400: no messages
                     limited.post(token, {"model": "nope", "messages": HELLO}),  # 404
                     limited.post(token, stream=True)):
        assert response.headers["x-ratelimit-limit-requests"] == "10", response.text
        assert response.headers["x-ratelimit-limit-tokens"] == "10000"
        assert {"x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens", "x-ratelimit-reset-requests",
                "x-ratelimit-remaining-requests"} <= set(response.headers)
    limited.upstream.fail_next(500)
    failed = limited.post(token)
    assert failed.status_code == 502 and failed.headers["x-ratelimit-remaining-requests"] == "8"
    unlimited = limited.post(limited.token("free"))
    assert unlimited.status_code == 200 and not any(h.startswith("x-ratelimit") for h in unlimited.headers)


def test_a_token_without_limits_never_touches_a_store(limited: Limited, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_store() -> None:
        raise AssertionError("a store was asked")

    monkeypatch.setattr(stores, "current", no_store)
    token = limited.token("free")
    assert limited.post(token).status_code == 200 and limited.post(token, stream=True).status_code == 200
    assert limited.post(token, {"model": "nope", "messages": HELLO}).status_code == 404


@pytest.mark.parametrize("store_name", ["database"], indirect=True)
def test_an_unreachable_redis_refuses_limited_tokens_with_503_when_failure_is_closed(limited: Limited,
                                                                                      settings) -> None:
    settings.GATEWAY = {"LIMITS_STORE": "redis", "REDIS_FAILURE": "closed"}
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = limited.post(limited.token(rpm=5))
    assert response.status_code == 503 and response.json()["error"]["code"] == "limits_unavailable"
    assert limited.post(limited.token("free")).status_code == 200


@pytest.mark.parametrize("store_name", ["database"], indirect=True)
def test_an_unreachable_redis_counts_limits_per_process_when_failure_is_open(limited: Limited, settings) -> None:
    settings.GATEWAY = {"LIMITS_STORE": "redis", "REDIS_FAILURE": "open"}
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    token = limited.token(rpm=2)
    statuses = [limited.post(token).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]  # (the live gateway is one process: its own count is exact)


@pytest.mark.parametrize("store_name", ["database"], indirect=True)
def test_drf_views_can_list_it_as_a_throttle_for_rpm(limited: Limited) -> None:
    class Counted(APIView):
        throttle_classes = [TokenLimits]

        def get(self, request: Request) -> Response:
            return Response({"ok": True})

    token = limited.token(rpm=2)
    factory = APIRequestFactory()
    statuses = [Counted.as_view()(factory.get("/v1/x", HTTP_AUTHORIZATION=f"Bearer {token}")) for _ in range(3)]
    assert [s.status_code for s in statuses] == [200, 200, 429]
    assert 1 <= int(statuses[2]["Retry-After"]) <= 60
    # the hot views' entry counts in the same windows
    throttle, user = TokenLimits(), authentication.authenticate_sync(token)
    assert not asyncio.run(throttle.aallow_request(SimpleNamespace(user=user), None))
    assert 0 < throttle.wait() <= 60
