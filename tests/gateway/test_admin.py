"""The admin: tokens shown once, provider keys write-only, registry with deployments, logs read-only."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from gateway import crypto
from gateway.models import ApiToken, ModelEntry, ProviderAccount, RequestLog, Team
from tests.conftest import make_provider

pytestmark = pytest.mark.django_db

SECRET_KEY_VALUE = "sk-admin-typed-secret-9876543210"


def test_new_token_secret_is_shown_once_and_only_its_digest_is_stored(admin_client: Client) -> None:
    response = admin_client.post(reverse("admin:gateway_apitoken_add"), {"name": "web", "active": "on",
                                                                        "allowed_models": ""})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    secret = response.context["secret"]
    token = ApiToken.objects.get(name="web")
    assert secret.startswith("sk-gw-") and secret in response.content.decode()
    assert token.digest == crypto.token_digest(secret) and token.prefix == secret[:crypto.PREFIX_LENGTH]
    change_page = admin_client.get(reverse("admin:gateway_apitoken_change", args=[token.pk])).content.decode()
    listing = admin_client.get(reverse("admin:gateway_apitoken_changelist")).content.decode()
    assert secret not in change_page and secret not in listing and token.prefix in listing


def test_editing_a_token_keeps_its_secret(admin_client: Client) -> None:
    admin_client.post(reverse("admin:gateway_apitoken_add"), {"name": "web", "active": "on"})
    token = ApiToken.objects.get(name="web")
    response = admin_client.post(reverse("admin:gateway_apitoken_change", args=[token.pk]),
                                 {"name": "web-renamed", "allowed_models": "gpt-*"})
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.name == "web-renamed" and not token.active and token.digest == ApiToken.objects.get().digest


def test_revoke_action_deactivates_tokens(admin_client: Client) -> None:
    admin_client.post(reverse("admin:gateway_apitoken_add"), {"name": "web", "active": "on"})
    token = ApiToken.objects.get(name="web")
    admin_client.post(reverse("admin:gateway_apitoken_changelist"), {"action": "revoke", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert not token.active


def provider_form(**overrides: str) -> dict[str, str]:
    return {"name": "openai-main", "kind": "openai", "base_url": "", "api_key": SECRET_KEY_VALUE, "options": "{}",
            "connect_timeout": "10", "first_byte_timeout": "120", "read_timeout": "300", "active": "on", **overrides}


def test_provider_key_is_encrypted_write_only_and_never_rendered(admin_client: Client) -> None:
    response = admin_client.post(reverse("admin:gateway_provideraccount_add"), provider_form())
    assert response.status_code == 302
    account = ProviderAccount.objects.get()
    assert account.get_api_key() == SECRET_KEY_VALUE and SECRET_KEY_VALUE not in account.api_key_encrypted
    page = admin_client.get(reverse("admin:gateway_provideraccount_change", args=[account.pk])).content.decode()
    listing = admin_client.get(reverse("admin:gateway_provideraccount_changelist")).content.decode()
    assert SECRET_KEY_VALUE not in page and account.api_key_encrypted not in page and SECRET_KEY_VALUE not in listing
    # Saving without typing a key keeps it; the clear box removes it.
    admin_client.post(reverse("admin:gateway_provideraccount_change", args=[account.pk]), provider_form(api_key=""))
    account.refresh_from_db()
    assert account.get_api_key() == SECRET_KEY_VALUE
    admin_client.post(reverse("admin:gateway_provideraccount_change", args=[account.pk]),
                      provider_form(api_key="", clear_api_key="on"))
    account.refresh_from_db()
    assert not account.has_api_key


def test_unknown_kind_and_bad_url_are_rejected(admin_client: Client) -> None:
    response = admin_client.post(reverse("admin:gateway_provideraccount_add"),
                                 provider_form(kind="telepathy", base_url="not a url"))
    assert response.status_code == 200 and not ProviderAccount.objects.exists()
    assert set(response.context["adminform"].form.errors) == {"kind", "base_url"}


def test_check_connection_action_reports_and_records_the_result(admin_client: Client, fake_openai) -> None:
    good = make_provider("good", base_url=fake_openai.base_url)
    bad = make_provider("bad", base_url=fake_openai.base_url, api_key="sk-wrong-key-000000000000")
    response = admin_client.post(reverse("admin:gateway_provideraccount_changelist"),
                                 {"action": "check_connection_action", "_selected_action": [good.pk, bad.pk]},
                                 follow=True)
    shown = [str(m) for m in response.context["messages"]]
    assert any(m.startswith("good: OK") for m in shown)
    assert any(m.startswith("bad: ") and "credentials" in m for m in shown)
    assert "sk-wrong" not in " ".join(shown)
    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.last_success_at is not None and bad.last_error_at is not None
    assert fake_openai.last.path == "/v1/models"


def test_model_with_deployments_is_edited_in_one_page(admin_client: Client) -> None:
    account = make_provider()
    data = {"name": "gpt-*", "description": "", "input_price_per_million": "0.15", "output_price_per_million": "0.6",
            "active": "on", "deployments-TOTAL_FORMS": "1", "deployments-INITIAL_FORMS": "0",
            "deployments-0-provider": str(account.pk), "deployments-0-upstream_model": "",
            "deployments-0-weight": "1", "deployments-0-priority": "0", "deployments-0-active": "on"}
    response = admin_client.post(reverse("admin:gateway_modelentry_add"), data)
    assert response.status_code == 302
    entry = ModelEntry.objects.get()
    assert entry.is_pattern and entry.deployments.get().provider == account


def test_request_logs_are_searchable_by_session_and_read_only(admin_client: Client) -> None:
    from django.utils import timezone

    RequestLog.objects.create(created_at=timezone.now(), request_id="req_1", endpoint="chat.completions",
                              status_code=200, session_id="sess-abc")
    RequestLog.objects.create(created_at=timezone.now(), request_id="req_2", endpoint="chat.completions",
                              status_code=500, session_id="other")
    page = admin_client.get(reverse("admin:gateway_requestlog_changelist"), {"q": "sess-abc"}).content.decode()
    assert "req_1" in page and "req_2" not in page
    filtered = admin_client.get(reverse("admin:gateway_requestlog_changelist"), {"status_code": "500"}).content.decode()
    assert "req_2" in filtered and "req_1" not in filtered
    assert admin_client.get(reverse("admin:gateway_requestlog_add")).status_code == 403
    session = admin_client.get(reverse("admin:gateway_requestlog_changelist"), {"session_id": "sess-abc"})
    assert session.status_code == 200 and "req_1" in session.content.decode() and "req_2" not in session.content.decode()
    assert 'href="?session_id=sess-abc"' in page


def test_limits_are_edited_on_tokens_and_teams_and_shown_in_their_lists(admin_client: Client) -> None:
    admin_client.post(reverse("admin:gateway_team_add"), {"name": "platform", "rpm": "100", "budget": "50",
                                                         "budget_period": "monthly"})
    team = Team.objects.get()
    assert (team.rpm, team.budget, team.budget_period) == (100, Decimal("50"), "monthly")
    admin_client.post(reverse("admin:gateway_apitoken_add"), {"name": "web", "active": "on", "team": team.pk,
                                                             "rpm": "10", "tpm": "20000", "parallel": "2"})
    token = ApiToken.objects.get(name="web")
    assert (token.rpm, token.tpm, token.parallel, token.budget, token.budget_period) == (10, 20000, 2, None, "total")
    listing = admin_client.get(reverse("admin:gateway_apitoken_changelist")).content.decode()
    assert "10 rpm, 20000 tpm, 2 parallel" in listing
    assert "100 rpm, $50 monthly" in admin_client.get(reverse("admin:gateway_team_changelist")).content.decode()
    page = admin_client.get(reverse("admin:gateway_apitoken_change", args=[token.pk])).content.decode()
    assert 'name="budget_period"' in page and "Limits" in page
    refused = admin_client.post(reverse("admin:gateway_team_change", args=[team.pk]),
                                {"name": "platform", "budget": "-1", "budget_period": "monthly"})
    assert refused.status_code == 200 and Team.objects.get().budget == Decimal("50")


def test_the_admin_sets_each_timeout_and_refuses_one_of_zero(admin_client: Client) -> None:
    response = admin_client.post(reverse("admin:gateway_provideraccount_add"),
                                 provider_form(first_byte_timeout="0", read_timeout="-1"))
    assert response.status_code == 200 and not ProviderAccount.objects.exists()
    assert set(response.context["adminform"].form.errors) == {"first_byte_timeout", "read_timeout"}
    admin_client.post(reverse("admin:gateway_provideraccount_add"),
                      provider_form(connect_timeout="3", first_byte_timeout="600", read_timeout="45"))
    account = ProviderAccount.objects.get()
    assert (account.connect_timeout, account.first_byte_timeout, account.read_timeout) == (3, 600, 45)
