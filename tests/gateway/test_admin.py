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
    posted = admin_client.post(reverse("admin:gateway_apitoken_add"), {"name": "web", "active": "on",
                                                                      "allowed_models": ""})
    token = ApiToken.objects.get(name="web")
    assert posted.status_code == 302 and posted["Location"] == reverse("admin:gateway_apitoken_created",
                                                                       args=[token.pk])
    assert token.prefix not in posted.content.decode()  # the POST's answer holds no secret
    response = admin_client.get(posted["Location"])
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    secret = response.context["secret"]
    page = response.content.decode()
    assert secret.startswith("sk-gw-") and secret in page
    assert token.digest == crypto.token_digest(secret) and token.prefix == secret[:crypto.PREFIX_LENGTH]
    # ready-to-paste snippets with the gateway's own URL
    assert "http://testserver/v1/chat/completions" in page and 'base_url="http://testserver/v1"' in page
    assert f"export OPENAI_API_KEY={secret}" in page
    change_page = admin_client.get(reverse("admin:gateway_apitoken_change", args=[token.pk])).content.decode()
    listing = admin_client.get(reverse("admin:gateway_apitoken_changelist")).content.decode()
    assert secret not in change_page and secret not in listing and token.prefix in listing


def test_reloading_the_token_created_page_neither_shows_the_secret_again_nor_creates_a_token(
        admin_client: Client) -> None:
    posted = admin_client.post(reverse("admin:gateway_apitoken_add"), {"name": "web", "active": "on"})
    first = admin_client.get(posted["Location"])
    secret = first.context["secret"]
    again = admin_client.get(posted["Location"], follow=True)
    assert secret not in again.content.decode() and "was shown once" in again.content.decode()
    assert ApiToken.objects.count() == 1


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


def test_an_openai_compatible_account_needs_a_base_url_and_the_form_shows_each_kinds_default(
        admin_client: Client) -> None:
    form_page = admin_client.get(reverse("admin:gateway_provideraccount_add")).content.decode()
    assert "openai: https://api.openai.com/v1" in form_page and "openai_compatible: none, required" in form_page
    response = admin_client.post(reverse("admin:gateway_provideraccount_add"),
                                 provider_form(kind="openai_compatible", base_url=""))
    assert response.status_code == 200 and not ProviderAccount.objects.exists()
    assert "no default URL" in str(response.context["adminform"].form.errors["base_url"])
    # one saved before this check (or by hand) is not shown as configured
    legacy = make_provider("legacy", kind="openai_compatible", base_url="", api_key="")
    assert not legacy.is_configured


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

    one = RequestLog.objects.create(created_at=timezone.now(), request_id="req_1", endpoint="chat.completions",
                                    requested_model="model-one", status_code=200, session_id="sess-abc",
                                    prompt_tokens=1200, completion_tokens=34)
    RequestLog.objects.create(created_at=timezone.now(), request_id="req_2", endpoint="chat.completions",
                              requested_model="model-two", status_code=500, session_id="other")
    page = admin_client.get(reverse("admin:gateway_requestlog_changelist"), {"q": "sess-abc"}).content.decode()
    assert "model-one" in page and "model-two" not in page and "1,200 + 34" in page
    by_id = admin_client.get(reverse("admin:gateway_requestlog_changelist"), {"q": "req_2"}).content.decode()
    assert "model-two" in by_id and "model-one" not in by_id
    filtered = admin_client.get(reverse("admin:gateway_requestlog_changelist"), {"status_code": "500"}).content.decode()
    assert "model-two" in filtered and "model-one" not in filtered
    assert admin_client.get(reverse("admin:gateway_requestlog_add")).status_code == 403
    session = admin_client.get(reverse("admin:gateway_requestlog_changelist"), {"session_id": "sess-abc"})
    assert session.status_code == 200 and "model-one" in session.content.decode()
    assert "model-two" not in session.content.decode()
    assert 'href="?session_id=sess-abc"' in page
    # rows leave only through the retention command: no delete in the admin, not even one by one
    assert admin_client.post(reverse("admin:gateway_requestlog_delete", args=[one.pk]), {"post": "yes"}).status_code == 403
    assert RequestLog.objects.count() == 2


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


def test_a_token_allowed_models_nothing_serves_saves_with_a_warning(admin_client: Client) -> None:
    ModelEntry.objects.create(name="gpt-4o-mini")
    ModelEntry.objects.create(name="@cf/*")
    response = admin_client.post(reverse("admin:gateway_apitoken_add"), {
        "name": "web", "active": "on", "allowed_models": "gpt-4o-mini, gpt-*, @cf/meta/llama-3, gtp-4o, claude-*"},
        follow=True)
    shown = [str(m) for m in response.context["messages"]]
    assert ApiToken.objects.filter(name="web").exists()
    assert any("gtp-4o, claude-*" in m and "cannot use it" in m for m in shown), shown
    quiet = admin_client.post(reverse("admin:gateway_apitoken_add"), {
        "name": "ok", "active": "on", "allowed_models": "gpt-4o-mini"}, follow=True)
    assert not any("cannot use it" in str(m) for m in quiet.context["messages"])


def test_the_admin_sets_each_timeout_and_refuses_one_of_zero(admin_client: Client) -> None:
    response = admin_client.post(reverse("admin:gateway_provideraccount_add"),
                                 provider_form(first_byte_timeout="0", read_timeout="-1"))
    assert response.status_code == 200 and not ProviderAccount.objects.exists()
    assert set(response.context["adminform"].form.errors) == {"first_byte_timeout", "read_timeout"}
    admin_client.post(reverse("admin:gateway_provideraccount_add"),
                      provider_form(connect_timeout="3", first_byte_timeout="600", read_timeout="45"))
    account = ProviderAccount.objects.get()
    assert (account.connect_timeout, account.first_byte_timeout, account.read_timeout) == (3, 600, 45)
