"""The provider account form's options: a field per option each kind declares, checked for the selected
kind only, the rest kept in an "other options (JSON)" field; an unchanged form saves the same options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse

from gateway.config.file import apply
from gateway.models import ProviderAccount
from tests.conftest import make_provider

pytestmark = pytest.mark.django_db

ADD = "admin:gateway_provideraccount_add"


def account_form(**overrides: str) -> dict[str, str]:
    return {"name": "cf-main", "kind": "cloudflare", "base_url": "", "api_key": "cf-token-0123456789",
            "connect_timeout": "10", "first_byte_timeout": "120", "read_timeout": "300", "active": "on",
            "other_options": "{}", **overrides}


def form_errors(response: Any) -> dict[str, list[str]]:
    return {name: [str(e) for e in errors] for name, errors in response.context["adminform"].form.errors.items()}


def test_a_cloudflare_account_without_its_account_id_is_refused_on_that_field(admin_client: Client) -> None:
    refused = admin_client.post(reverse(ADD), account_form())
    assert refused.status_code == 200 and not ProviderAccount.objects.exists()
    errors = form_errors(refused)
    assert list(errors) == ["options__cloudflare__account_id"]
    assert errors["options__cloudflare__account_id"][0].startswith("Account ID (account_id) is required for this kind")
    blank = admin_client.post(reverse(ADD), account_form(options__cloudflare__account_id="   "))
    assert blank.status_code == 200 and not ProviderAccount.objects.exists()
    # with it: saved, and another kind's fields (filled in the page, hidden by the script) are not
    saved = admin_client.post(reverse(ADD), account_form(options__cloudflare__account_id=" acc-123 ",
                                                         options__openai__organization="org-typed-by-mistake",
                                                         options__openai_compatible__responses="on"))
    assert saved.status_code == 302
    assert ProviderAccount.objects.get().options == {"account_id": "acc-123"}


def test_the_form_has_each_kinds_options_marked_with_their_kind_and_the_script_that_shows_one_kind(
        admin_client: Client) -> None:
    page = admin_client.get(reverse(ADD)).content.decode()
    assert 'data-provider-kind="cloudflare"' in page and "Account ID (Cloudflare Workers AI, required)" in page
    assert "Organization (OpenAI)" in page and "Organization (OpenAI-compatible)" in page
    assert 'type="checkbox" name="options__openai__stream_usage"' in page
    assert '<textarea name="options__anthropic__headers"' in page and "Other options (JSON)" in page
    assert "gemini" not in {line.split('data-provider-kind="')[1].split('"')[0]
                            for line in page.splitlines() if 'data-provider-kind="' in line}  # it declares none
    assert "/static/gateway/admin/provider_options.js" in page
    script = finders.find("gateway/admin/provider_options.js")
    assert script and "data-provider-kind" in Path(script).read_text()


def test_booleans_left_at_their_default_are_not_stored_and_headers_are_typed_as_lines(admin_client: Client) -> None:
    admin_client.post(reverse(ADD), account_form(name="oa", kind="openai", options__openai__stream_usage="on",
                                                 options__openai__project="proj_1"))
    assert ProviderAccount.objects.get(name="oa").options == {"project": "proj_1"}
    admin_client.post(reverse(ADD), account_form(
        name="local", kind="openai_compatible", base_url="http://127.0.0.1:11434/v1",
        options__openai_compatible__responses="on",  # stream_usage unticked
        options__openai_compatible__headers="X-Team: platform\n\nX-Trace:  on  "))
    assert ProviderAccount.objects.get(name="local").options == {
        "responses": True, "stream_usage": False, "headers": {"X-Team": "platform", "X-Trace": "on"}}
    refused = admin_client.post(reverse(ADD), account_form(name="claude", kind="anthropic",
                                                           options__anthropic__headers="no colon here"))
    assert "Line 1: expected" in form_errors(refused)["options__anthropic__headers"][0]
    assert not ProviderAccount.objects.filter(name="claude").exists()


def test_other_options_are_kept_as_json_and_declared_ones_refused_there(admin_client: Client) -> None:
    admin_client.post(reverse(ADD), account_form(options__cloudflare__account_id="acc-1",
                                                 other_options='{"gateway_note": {"owner": "ops"}}'))
    assert ProviderAccount.objects.get().options == {"account_id": "acc-1", "gateway_note": {"owner": "ops"}}
    own = admin_client.post(reverse(ADD), account_form(name="cf-2", other_options='{"account_id": "acc-2"}'))
    assert "'account_id' has its own field above" in " ".join(form_errors(own)["other_options"])
    other = admin_client.post(reverse(ADD), account_form(name="cf-3", options__cloudflare__account_id="a",
                                                         other_options='{"organization": "org-1"}'))
    assert "'organization' is an option of OpenAI, OpenAI-compatible" in " ".join(form_errors(other)["other_options"])
    listed = admin_client.post(reverse(ADD), account_form(name="cf-4", options__cloudflare__account_id="a",
                                                          other_options="[1, 2]"))
    assert "Must be a JSON object" in " ".join(form_errors(listed)["other_options"])
    assert ProviderAccount.objects.count() == 1


def unchanged(admin_client: Client, account: ProviderAccount) -> dict[str, str]:
    """The change form's fields as the page fills them, posted back as a browser would (no key typed)."""
    url = reverse("admin:gateway_provideraccount_change", args=[account.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {}
    for name in form.fields:
        value = form[name].value()
        if value is True:
            data[name] = "on"
        elif value not in (False, None):
            data[name] = str(value)
    response = admin_client.post(url, data)
    assert response.status_code == 302, form_errors(response)
    account.refresh_from_db()
    return account.options


def test_saving_an_account_from_the_config_file_unchanged_keeps_its_options_exactly(admin_client: Client) -> None:
    options = {"organization": "org-1", "stream_usage": True, "headers": {"X-Count": 1},
               "custom": {"nested": [1, "two"]}, "flag": None}
    apply({"providers": [{"name": "oa", "kind": "openai", "options": options},
                         {"name": "cf", "kind": "cloudflare", "options": {"account_id": "acc-9", "zone": "eu"}},
                         {"name": "claude", "kind": "anthropic", "options": {"anthropic_version": "2023-06-01"}},
                         {"name": "g", "kind": "gemini", "options": {"anything": 1}}]}, environ={})
    for name, expected in (("oa", options), ("cf", {"account_id": "acc-9", "zone": "eu"}),
                           ("claude", {"anthropic_version": "2023-06-01"}), ("g", {"anything": 1})):
        assert unchanged(admin_client, ProviderAccount.objects.get(name=name)) == expected, name


def test_switching_kind_keeps_the_options_both_kinds_have_and_drops_the_others(admin_client: Client) -> None:
    account = make_provider("oa", kind="openai", options={"organization": "org-1", "headers": {"X-A": "1"}})
    url = reverse("admin:gateway_provideraccount_change", args=[account.pk])
    form = admin_client.get(url).context["adminform"].form
    assert form["options__anthropic__headers"].value() == "X-A: 1"  # shown under the other kinds too
    data = account_form(name="oa", kind="anthropic", api_key="",
                        options__anthropic__headers=form["options__anthropic__headers"].value(),
                        options__openai__organization="org-1")
    assert admin_client.post(url, data).status_code == 302
    account.refresh_from_db()
    assert account.kind == "anthropic" and account.options == {"headers": {"X-A": "1"}}
