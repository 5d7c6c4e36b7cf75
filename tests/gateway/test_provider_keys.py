"""Stored provider keys that no configured encryption key opens: reported, refused with a clear 503, and
``manage.py gateway_rekey`` to move every key under the first of GATEWAY_ENCRYPTION_KEYS."""

from __future__ import annotations

import logging
from io import StringIO

import httpx
import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from gateway import crypto, invalidation, provider_keys
from gateway.models import ProviderAccount
from gateway.routing.provider_check import check_connection
from gateway.routing.registry import load_registry
from tests.conftest import UPSTREAM_KEY, make_model, make_provider, make_token

OLD, NEW, OTHER = "old-encryption-passphrase", "new-encryption-passphrase", "someone-elses-passphrase"


def use_keys(settings, *keys: str) -> None:
    """As a restart with GATEWAY_ENCRYPTION_KEYS=keys would (the workers' caches start empty)."""
    settings.GATEWAY = {"ENCRYPTION_KEYS": list(keys)}
    invalidation.clear_local()


@pytest.fixture
def stored_under_old_key(settings, db) -> ProviderAccount:
    use_keys(settings, OLD)
    return make_provider("locked-away", base_url="http://127.0.0.1:9/v1")


@pytest.mark.django_db
def test_key_status_tells_ok_missing_and_undecryptable(settings, stored_under_old_key: ProviderAccount) -> None:
    keyless = make_provider("keyless", api_key="")
    assert (stored_under_old_key.key_status, keyless.key_status) == ("ok", "missing")
    use_keys(settings, NEW)
    account = ProviderAccount.objects.get(name="locked-away")
    assert account.key_status == "undecryptable" and account.has_api_key and not account.is_configured
    assert account.get_api_key() == "" and account.as_account().api_key == ""
    use_keys(settings, NEW, OLD)  # the old key back, after the new one: readable again
    assert ProviderAccount.objects.get(name="locked-away").get_api_key() == UPSTREAM_KEY


@pytest.mark.django_db
def test_an_undecryptable_key_is_logged_once_per_account_never_its_ciphertext(
        settings, stored_under_old_key: ProviderAccount, caplog: pytest.LogCaptureFixture) -> None:
    use_keys(settings, NEW)
    provider_keys._reported.clear()
    make_model("gpt-4o-mini", (stored_under_old_key, "gpt-4o-mini"))
    with caplog.at_level(logging.ERROR, logger="gateway.provider_keys"):
        for _ in range(3):
            load_registry()
            ProviderAccount.objects.get(name="locked-away").key_status  # noqa: B018 (the admin asks too)
    errors = [r.getMessage() for r in caplog.records if r.name == "gateway.provider_keys"]
    assert len(errors) == 1 and "'locked-away'" in errors[0] and "GATEWAY_ENCRYPTION_KEYS" in errors[0]
    assert stored_under_old_key.api_key_encrypted not in errors[0] and UPSTREAM_KEY not in errors[0]


def test_requests_to_it_fail_with_503_provider_key_undecryptable_and_fall_back(
        settings, live_gateway, fake_openai) -> None:
    use_keys(settings, OLD)
    locked = make_provider("locked-away", base_url=fake_openai.base_url)
    make_model("only-locked", (locked, "gpt-4o-mini"))
    use_keys(settings, NEW)
    readable = make_provider("readable", base_url=fake_openai.base_url)
    make_model("with-fallback", (locked, "gpt-4o-mini"), (readable, "gpt-4o-mini"))
    token = make_token()

    def chat(model: str) -> httpx.Response:
        return httpx.post(f"{live_gateway.v1}/chat/completions", headers={"Authorization": f"Bearer {token}"},
                          json={"model": model, "messages": [{"role": "user", "content": "hi"}]})

    refused = chat("only-locked")
    assert refused.status_code == 503
    error = refused.json()["error"]
    assert error["code"] == "provider_key_undecryptable" and "'locked-away'" in error["message"]
    assert "GATEWAY_ENCRYPTION_KEYS" in error["message"] and "enter the API key again" in error["message"]
    assert fake_openai.requests == []  # never sent without its key
    assert chat("with-fallback").status_code == 200
    assert [r.headers.get("authorization") for r in fake_openai.requests] == [f"Bearer {UPSTREAM_KEY}"]
    operator = {"Authorization": "Bearer ops-secret-for-this-test-0123456789"}
    settings.GATEWAY = {**settings.GATEWAY, "OPS_TOKEN": operator["Authorization"][7:]}
    health = {p["name"]: p for p in httpx.get(f"{live_gateway.url}/health", headers=operator).json()["accounts"]}
    assert health["locked-away"]["configured"] is False and health["readable"]["configured"] is True
    assert (health["locked-away"]["key_status"], health["readable"]["key_status"]) == ("undecryptable", "ok")


@pytest.mark.django_db
def test_the_admin_shows_it_in_the_list_and_on_the_change_form(settings, admin_client: Client,
                                                               stored_under_old_key: ProviderAccount) -> None:
    make_provider("fine")
    use_keys(settings, NEW)
    make_provider("fine-too")
    listing = admin_client.get(reverse("admin:gateway_provideraccount_changelist"))
    page = listing.content.decode()
    assert page.count("undecryptable</strong>") == 2  # locked-away and fine, both stored under OLD
    warning = " ".join(str(m) for m in listing.context["messages"])
    assert "locked-away" in warning and "GATEWAY_ENCRYPTION_KEYS" in warning and "fine-too" not in warning
    change = admin_client.get(reverse("admin:gateway_provideraccount_change", args=[stored_under_old_key.pk]))
    assert "undecryptable" in change.content.decode()
    assert any("enter the API key again" in str(m) for m in change.context["messages"])
    assert stored_under_old_key.api_key_encrypted not in page + change.content.decode()


@pytest.mark.django_db
def test_check_connection_reports_it_without_calling_the_provider(settings,
                                                                   stored_under_old_key: ProviderAccount) -> None:
    use_keys(settings, NEW)
    ok, message = check_connection(ProviderAccount.objects.get(name="locked-away"))
    assert not ok and "cannot be decrypted" in message


def rekey(*args: str) -> str:
    out = StringIO()
    call_command("gateway_rekey", *args, stdout=out, stderr=out)
    return out.getvalue()


@pytest.mark.django_db
def test_rekey_moves_every_key_under_the_first_key_idempotently(settings,
                                                                  stored_under_old_key: ProviderAccount) -> None:
    make_provider("second", api_key="sk-second-0123456789")
    make_provider("keyless", api_key="")
    use_keys(settings, NEW, OLD)
    assert "2 provider key(s) would be re-encrypted" in rekey("--dry-run")
    assert not crypto.is_current(ProviderAccount.objects.get(name="second").api_key_encrypted)
    assert "2 provider key(s) re-encrypted under the first key; 0 already were" in rekey()
    stored = {p.name: p.api_key_encrypted for p in ProviderAccount.objects.all()}
    assert "0 provider key(s) re-encrypted under the first key; 2 already were" in rekey()
    assert {p.name: p.api_key_encrypted for p in ProviderAccount.objects.all()} == stored  # untouched
    use_keys(settings, NEW)  # the old key dropped
    assert ProviderAccount.objects.get(name="locked-away").get_api_key() == UPSTREAM_KEY
    assert ProviderAccount.objects.get(name="second").get_api_key() == "sk-second-0123456789"


@pytest.mark.django_db
def test_rekey_lists_keys_it_cannot_decrypt_and_changes_nothing(settings,
                                                                stored_under_old_key: ProviderAccount) -> None:
    use_keys(settings, OTHER)
    make_provider("other", api_key="sk-other-0123456789")
    use_keys(settings, NEW, OTHER)  # OLD is lost
    before = {p.name: p.api_key_encrypted for p in ProviderAccount.objects.all()}
    out = StringIO()
    with pytest.raises(CommandError, match="1 stored key\\(s\\) cannot be decrypted.*nothing was changed"):
        call_command("gateway_rekey", stdout=out, stderr=out)
    assert "'locked-away'" in out.getvalue() and before["locked-away"] not in out.getvalue()
    assert {p.name: p.api_key_encrypted for p in ProviderAccount.objects.all()} == before
    # On request, the others are re-encrypted and the unreadable one is left as it was.
    assert "1 provider key(s) re-encrypted under the first key; 0 already were; 1 cannot" in rekey(
        "--skip-undecryptable")
    after = {p.name: p.api_key_encrypted for p in ProviderAccount.objects.all()}
    assert after["locked-away"] == before["locked-away"] and after["other"] != before["other"]
    assert crypto.is_current(after["other"])


@pytest.mark.django_db
def test_rotating_away_from_the_key_derived_from_the_secret_key(settings) -> None:
    """SECURITY.md's recipe when GATEWAY_ENCRYPTION_KEYS was unset: <new>,<the secret key>, rekey, <new>."""
    settings.GATEWAY = {}
    make_provider("derived")
    use_keys(settings, NEW, settings.SECRET_KEY)
    assert "1 provider key(s) re-encrypted" in rekey()
    use_keys(settings, NEW)
    assert ProviderAccount.objects.get(name="derived").get_api_key() == UPSTREAM_KEY
