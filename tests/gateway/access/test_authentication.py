"""Token authentication: where the token may come from, what is refused, and that lookups are cached."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from gateway.access import authentication
from gateway.errors import GatewayError
from gateway.models import ApiToken
from tests.conftest import make_token


def test_bearer_then_x_auth_token_then_query(settings) -> None:
    raw = authentication.raw_token_from
    assert raw({"authorization": "Bearer abc"}, {}) == "abc"
    assert raw({"authorization": "bearer  abc "}, {}) == "abc"
    assert raw({"x-auth-token": "xyz"}, {}) == "xyz"
    assert raw({}, {"auth_token": "q"}) == "q"
    assert raw({"authorization": "Basic Zm9v"}, {}) is None
    settings.GATEWAY = {"ALLOW_QUERY_TOKEN": False}
    assert raw({}, {"auth_token": "q"}) is None


@pytest.mark.django_db
def test_valid_token_authenticates_and_is_then_served_from_cache(django_assert_num_queries) -> None:
    raw = make_token("svc", allowed_models="gpt-*, claude-3")
    with django_assert_num_queries(1):
        info = authentication.authenticate_sync(raw)
    assert info.name == "svc" and info.allowed_models == ("gpt-*", "claude-3")
    with django_assert_num_queries(0):
        for _ in range(20):
            authentication.authenticate_sync(raw)
    assert info.allows("gpt-4o") and info.allows("claude-3") and not info.allows("claude-3-opus")


@pytest.mark.django_db
@pytest.mark.parametrize(("fields", "message"), [
    ({"active": False}, "revoked"),
    ({"expires_at": timezone.now() - timedelta(seconds=1)}, "expired"),
])
def test_revoked_and_expired_tokens_get_401(fields: dict, message: str) -> None:
    raw = make_token(**fields)
    with pytest.raises(GatewayError) as info:
        authentication.authenticate_sync(raw)
    assert info.value.status == 401 and message in info.value.message


@pytest.mark.django_db
def test_unknown_and_missing_tokens_get_401_that_never_echo_the_token() -> None:
    for raw in ("sk-gw-not-a-real-token", None):
        with pytest.raises(GatewayError) as info:
            asyncio.run(authentication.authenticate(raw))
        assert info.value.status == 401 and info.value.code == "invalid_api_key"
        assert "not-a-real" not in info.value.message


@pytest.mark.django_db(transaction=True)
def test_revoking_in_the_database_takes_effect_at_once_in_this_process() -> None:
    raw = make_token()
    authentication.authenticate_sync(raw)
    token = ApiToken.objects.get()
    token.active = False
    token.save()
    with pytest.raises(GatewayError):
        authentication.authenticate_sync(raw)


@pytest.mark.django_db
def test_tokens_are_stored_as_digest_and_prefix_only() -> None:
    raw = make_token()
    token = ApiToken.objects.get()
    assert raw.startswith("sk-gw-") and len(raw) >= 6 + 43
    assert token.prefix == raw[:12] and raw not in (token.digest, token.prefix)
    assert token.digest == authentication.crypto.token_digest(raw)


def test_concurrent_requests_with_an_uncached_token_share_one_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def slow_load(digest: str):
        calls.append(digest)
        time.sleep(0.05)
        return authentication.TokenInfo(1, "t", "sk-gw-x", None, True, None, ())

    monkeypatch.setattr(authentication, "load_token", slow_load)

    async def many() -> list:
        return await asyncio.gather(*(authentication.authenticate("sk-gw-same") for _ in range(50)))

    assert len(asyncio.run(many())) == 50 and len(calls) == 1


@pytest.mark.django_db
def test_a_flood_of_unknown_tokens_does_not_evict_the_real_ones(django_assert_num_queries, monkeypatch) -> None:
    monkeypatch.setattr(authentication, "MAX_CACHED_TOKENS", 50)
    raw = make_token()
    authentication.authenticate_sync(raw)
    for i in range(200):
        with pytest.raises(GatewayError):
            authentication.authenticate_sync(f"sk-gw-random-{i}")
    with django_assert_num_queries(0):
        authentication.authenticate_sync(raw)
