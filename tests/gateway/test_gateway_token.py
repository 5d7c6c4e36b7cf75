"""gateway_token: create prints the raw token alone on its last line; limits on create and update; list, revoke."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from gateway import crypto
from gateway.models import ApiToken

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("gateway_token", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_create_prints_the_raw_token_last_and_stores_only_its_digest() -> None:
    raw = run("create", "--name", "ci", "--team", "platform", "--models", "gpt-4o-mini,gpt-*").strip().splitlines()[-1]
    token = ApiToken.objects.get(name="ci")
    assert raw.startswith("sk-gw-") and token.digest == crypto.token_digest(raw) and raw != token.digest
    assert token.team.name == "platform" and token.allowed_model_list() == ["gpt-4o-mini", "gpt-*"]
    assert raw not in str(list(ApiToken.objects.values()))


def test_list_and_revoke() -> None:
    run("create", "--name", "old")
    assert "old" in run("list") and "active" in run("list")
    run("revoke", "old")
    assert not ApiToken.objects.get(name="old").active and "revoked" in run("list")
    with pytest.raises(CommandError):
        run("revoke", "old")


def test_expiry_must_be_positive() -> None:
    with pytest.raises(CommandError):
        run("create", "--name", "x", "--expires-days", "0")


def test_create_sets_limits_and_update_changes_or_removes_them() -> None:
    run("create", "--name", "ci", "--team", "platform", "--rpm", "60", "--tpm", "20000", "--parallel", "4",
        "--budget", "12.5", "--budget-period", "monthly", "--expires-days", "30")
    token = ApiToken.objects.get(name="ci")
    assert (token.rpm, token.tpm, token.parallel, token.budget, token.budget_period) == (
        60, 20000, 4, Decimal("12.5"), "monthly")
    assert token.team.name == "platform" and token.expires_at is not None
    assert "limits: 60 rpm, 20000 tpm, 4 parallel, $12.5 monthly" in run("list")
    out = run("update", token.prefix, "--rpm", "none", "--tpm", "100", "--team", "none", "--expires-days", "none")
    token.refresh_from_db()
    assert (token.rpm, token.tpm, token.parallel, token.team, token.expires_at) == (None, 100, 4, None, None)
    assert "100 tpm, 4 parallel, $12.5 monthly" in out
    run("update", "ci", "--budget", "none", "--name", "ci-2", "--models", "gpt-*")
    token.refresh_from_db()
    assert (token.name, token.budget, token.allowed_model_list()) == ("ci-2", None, ["gpt-*"])
    assert token.digest == ApiToken.objects.get().digest  # the secret stays


def test_limit_options_are_checked() -> None:
    for bad in (("--rpm", "-1"), ("--budget", "lots"), ("--budget-period", "hourly"), ("--budget", "99999999")):
        with pytest.raises(CommandError):
            run("create", "--name", "x", *bad)
    assert not ApiToken.objects.exists()
    run("create", "--name", "twin")
    run("create", "--name", "twin")
    with pytest.raises(CommandError, match="2 tokens match 'twin'"):
        run("update", "twin", "--rpm", "5")
    with pytest.raises(CommandError, match="No token"):
        run("update", "nobody", "--rpm", "5")


def test_the_anonymous_identity_is_listed_without_a_prefix_updated_by_name_and_keeps_its_name() -> None:
    ApiToken.anonymous()
    run("update", "anonymous", "--rpm", "30")
    assert ApiToken.objects.get(name="anonymous").rpm == 30
    assert "(no token)  anonymous  team=-  active  limits: 30 rpm" in run("list")
    with pytest.raises(CommandError, match="always named 'anonymous'"):
        run("update", "anonymous", "--name", "public")
    with pytest.raises(CommandError, match="anonymous identity's name"):
        run("create", "--name", "anonymous")
    assert ApiToken.objects.count() == 1
