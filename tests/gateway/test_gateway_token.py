"""gateway_token: create prints the raw token alone on its last line; list and revoke."""

from __future__ import annotations

import io

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
