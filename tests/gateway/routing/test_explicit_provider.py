"""The seed's ``provider`` body field: an explicit provider serves the requested name even when no
registry deployment of it does (the name goes to that provider's account as it is)."""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest
from django.test import Client

from gateway.models import RequestLog
from gateway.routing import registry as routing
from providers.base import Account
from tests.conftest import LiveGateway, make_fake_provider, make_model, make_provider, make_token


def account(name: str, kind: str) -> Account:
    return Account(name, kind, "", "k")


def test_a_provider_without_a_deployment_gets_the_requested_name_as_it_is() -> None:
    oa, g1, g2 = account("oa", "openai"), account("g-2", "gemini"), account("g-1", "gemini")
    registry = routing.Registry(
        [routing.Entry(1, "gpt-4o", None, None, Decimal("1"), Decimal("2"), False, 0, (routing.Route(oa, "", 1, 0),))],
        [oa, g1, g2])
    entry, routes = registry.resolve("gemini-2.5-flash", provider="gemini")
    assert [(r.account.name, r.model_for("gemini-2.5-flash")) for r in routes] == [
        ("g-1", "gemini-2.5-flash"), ("g-2", "gemini-2.5-flash")]
    assert entry.name == "gemini-2.5-flash" and entry.input_price_per_million is None  # the price list's
    _, by_name = registry.resolve("gpt-4o", provider="g-2")  # an account's name; the entry's own settings kept
    assert [r.account.name for r in by_name] == ["g-2"]
    assert registry.resolve("gpt-4o", provider="oa")[1][0].account.name == "oa"  # its deployment, as before
    assert registry.resolve("gpt-4o", provider="anthropic") is None


@pytest.fixture
def two_providers(live_gateway: LiveGateway, fakes) -> dict:
    openai_account = make_provider(base_url=fakes["openai"].base_url)
    make_fake_provider("gemini", fakes["gemini"], name="google")
    make_model("gpt-4o-mini", (openai_account, "gpt-4o-mini"), is_default=True)
    return {"gateway": live_gateway, "gemini": fakes["gemini"]}


def test_chat_with_provider_goes_to_that_provider_and_is_priced_by_the_price_list(two_providers: dict) -> None:
    client = openai.OpenAI(base_url=two_providers["gateway"].v1, api_key=make_token(), max_retries=0)
    reply = client.chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}],
                                           extra_body={"provider": "gemini"})
    assert reply.choices[0].message.content
    assert "gemini-2.5-flash" in two_providers["gemini"].last.path
    two_providers["gateway"].flush_logs()
    row = RequestLog.objects.get()
    assert (row.provider_account, row.resolved_model, row.status_code) == ("google", "gemini-2.5-flash", 200)
    assert row.cost is not None and row.cost > 0  # gemini-2.5-flash's list prices


def test_provider_routes_only_names_the_token_may_use_and_names_a_real_provider(two_providers: dict) -> None:
    narrow = openai.OpenAI(base_url=two_providers["gateway"].v1, api_key=make_token("narrow", allowed_models="gpt-*"),
                           max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        narrow.chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"provider": "gemini"})
    with pytest.raises(openai.BadRequestError) as refused:
        narrow.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"provider": "nobody"})
    assert refused.value.body["param"] == "provider"
    assert two_providers["gemini"].requests == []


@pytest.mark.django_db
def test_route_check_shows_the_provider_route(client: Client) -> None:
    make_provider("google", kind="gemini", base_url="http://127.0.0.1:9")
    token = make_token()
    body = client.get("/v1/route-check", {"model": "gemini-2.5-flash", "provider": "gemini"},
                      HTTP_X_AUTH_TOKEN=token).json()
    assert body["matched"] == {"entry": None, "rule": "provider"}
    [deployment] = body["deployments"]
    assert (deployment["provider_account"], deployment["upstream_model"]) == ("google", "gemini-2.5-flash")
    assert deployment["pricing"]["sources"]["input"] == "price_list"
    assert "as it is" in body["reason"]
