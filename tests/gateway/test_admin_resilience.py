"""The admin: a model's fallbacks (checked), a provider account's cooldown overrides and its cooldowns."""

from __future__ import annotations

import asyncio

import pytest
from django.test import Client
from django.urls import reverse

from gateway.models import ModelEntry, ProviderAccount
from gateway.routing.cooldowns import Policy, cooldowns
from tests.conftest import make_model, make_provider

pytestmark = pytest.mark.django_db


def model_form(name: str, fallbacks: str) -> dict:
    return {"name": name, "description": "", "fallbacks": fallbacks, "active": "on",
            "deployments-TOTAL_FORMS": "0", "deployments-INITIAL_FORMS": "0"}


def test_a_models_fallbacks_must_name_other_existing_models(admin_client: Client) -> None:
    make_model("gpt-4.1")
    make_model("gpt-*")
    url = reverse("admin:gateway_modelentry_add")
    for fallbacks, problem in (("gpt-5", "No model named"), ("claude", "is this model itself"),
                               ("gpt-*", "is a pattern")):
        response = admin_client.post(url, model_form("claude", fallbacks))
        assert response.status_code == 200 and problem in str(response.context["adminform"].form.errors["fallbacks"])
    assert admin_client.post(url, model_form("claude", "gpt-4.1, gpt-4.1\n")).status_code == 302
    assert ModelEntry.objects.get(name="claude").fallback_names() == ["gpt-4.1"]


def test_an_accounts_cooldowns_show_read_only_on_its_page_and_in_the_list(admin_client: Client) -> None:
    account = make_provider("flaky", cooldown_failures=1)
    asyncio.run(cooldowns.failed(("flaky", "gpt-4o-mini"), Policy(failures=1), "503 server_error: overloaded"))
    page = admin_client.get(reverse("admin:gateway_provideraccount_change", args=[account.pk])).content.decode()
    assert "gpt-4o-mini until" in page and "503 server_error: overloaded" in page
    assert 'name="cooldown_failures"' in page and 'name="in_cooldown"' not in page  # overrides edited, state not
    listing = admin_client.get(reverse("admin:gateway_provideraccount_changelist")).content.decode()
    assert "503 server_error: overloaded" in listing
    assert ProviderAccount.objects.get().cooldown_failures == 1
