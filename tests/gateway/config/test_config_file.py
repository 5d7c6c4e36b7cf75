"""gateway_apply: teams, providers and models from a file, idempotent, all-or-nothing, errors with paths."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from gateway.models import Deployment, ModelEntry, ProviderAccount, Team

pytestmark = pytest.mark.django_db

CONFIG = """
providers:
  - name: openai-main
    kind: openai
    base_url: http://127.0.0.1:9100/v1
    api_key: ${TEST_OPENAI_KEY}
    options: {organization: org-1}
  - name: local
    kind: openai_compatible
    base_url: http://127.0.0.1:11434/v1
models:
  - name: gpt-4o-mini
    deployments:
      - {provider: openai-main, model: gpt-4o-mini, weight: 1, priority: 0}
      - {provider: local, model: llama3, priority: 1}
    input_price_per_million: 0.15
    output_price_per_million: 0.60
    context_window: 128000
  - name: "gpt-*"
    deployments: [{provider: openai-main}]
"""


def write(tmp_path: Path, text: str, name: str = "gateway.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def apply(path: Path, monkeypatch: pytest.MonkeyPatch, key: str = "sk-from-env-1234") -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY", key)
    call_command("gateway_apply", str(path), stdout=io.StringIO())


def test_apply_creates_providers_models_and_deployments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    apply(write(tmp_path, CONFIG), monkeypatch)
    account = ProviderAccount.objects.get(name="openai-main")
    assert account.get_api_key() == "sk-from-env-1234" and "sk-from-env" not in account.api_key_encrypted
    assert account.options == {"organization": "org-1"}
    entry = ModelEntry.objects.get(name="gpt-4o-mini")
    assert entry.input_price_per_million == Decimal("0.15") and entry.context_window == 128000
    assert [(d.provider.name, d.upstream_model, d.priority) for d in entry.deployments.all()] == [
        ("openai-main", "gpt-4o-mini", 0), ("local", "llama3", 1)]
    assert Deployment.objects.get(model__name="gpt-*").upstream_model == ""  # pattern: name passed through


def test_applying_twice_updates_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, CONFIG)
    apply(path, monkeypatch)
    apply(write(tmp_path, CONFIG.replace("0.60", "0.70").replace("priority: 1", "priority: 5")), monkeypatch,
          key="sk-rotated-5678")
    assert ProviderAccount.objects.count() == 2 and ModelEntry.objects.count() == 2
    assert Deployment.objects.filter(model__name="gpt-4o-mini").count() == 2
    assert ModelEntry.objects.get(name="gpt-4o-mini").output_price_per_million == Decimal("0.70")
    assert Deployment.objects.get(provider__name="local").priority == 5
    assert ProviderAccount.objects.get(name="openai-main").get_api_key() == "sk-rotated-5678"


def test_json_files_are_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '{"providers": [{"name": "p", "kind": "openai_compatible", "base_url": "http://127.0.0.1:1/v1"}],'
                           ' "models": [{"name": "m", "deployments": [{"provider": "p", "model": "x"}]}]}', "c.json")
    apply(path, monkeypatch)
    assert ModelEntry.objects.get(name="m").deployments.get().upstream_model == "x"


def test_errors_name_their_path_and_nothing_is_half_applied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = CONFIG.replace("kind: openai_compatible", "kind: telepathy").replace(
        "{provider: local, model: llama3, priority: 1}", "{provider: nowhere, model: llama3, priority: high}")
    broken += "  - name: extra\n    input_price_per_million: -1\n    colour: blue\n"
    with pytest.raises(CommandError) as info:
        apply(write(tmp_path, broken), monkeypatch)
    message = str(info.value)
    assert "providers[1].kind: unknown kind 'telepathy'" in message
    assert "models[0].deployments[1].provider: no provider named 'nowhere'" in message
    assert "models[0].deployments[1].priority: must be a whole number" in message
    assert "models[2].input_price_per_million: must be a number >= 0" in message
    assert "models[2].colour: unknown field" in message
    assert ProviderAccount.objects.count() == 0 and ModelEntry.objects.count() == 0


def test_missing_environment_variable_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_OPENAI_KEY", raising=False)
    with pytest.raises(CommandError, match=r"providers\[0\].api_key: environment variable TEST_OPENAI_KEY is not set"):
        call_command("gateway_apply", str(write(tmp_path, CONFIG)))
    assert not ProviderAccount.objects.exists()


def test_invalid_yaml_is_reported(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="not valid YAML"):
        call_command("gateway_apply", str(write(tmp_path, "providers: [unclosed")))


def test_bare_hostnames_are_valid_base_urls_but_nonsense_is_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ok = "providers: [{name: p, kind: openai_compatible, base_url: 'http://ollama:11434/v1'}]\n"
    apply(write(tmp_path, ok), monkeypatch)
    assert ProviderAccount.objects.get(name="p").base_url == "http://ollama:11434/v1"
    with pytest.raises(CommandError, match=r"providers\[0\].base_url: Enter a URL"):
        apply(write(tmp_path, ok.replace("http://ollama:11434/v1", "ftp:/nowhere")), monkeypatch)

    with pytest.raises(CommandError, match=r"providers\[0\].base_url: This kind has no default URL"):
        apply(write(tmp_path, "providers: [{name: q, kind: openai_compatible}]\n"), monkeypatch)


TEAMS = """
teams:
  - name: platform
    description: The platform team
    rpm: 600
    tpm: 200000
    parallel: 8
    budget: 250.50
    budget_period: monthly
  - name: research
    budget: 10
"""


def test_teams_and_their_limits_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    apply(write(tmp_path, TEAMS), monkeypatch)
    platform = Team.objects.get(name="platform")
    assert (platform.rpm, platform.tpm, platform.parallel, platform.budget, platform.budget_period) == (
        600, 200000, 8, Decimal("250.50"), "monthly")
    assert platform.description == "The platform team"
    assert Team.objects.get(name="research").limits_summary() == "$10 total"
    # applied again with one limit removed (null) and one left out (kept)
    apply(write(tmp_path, "teams:\n  - {name: platform, rpm: null, tpm: 1000}\n"), monkeypatch)
    platform.refresh_from_db()
    assert (platform.rpm, platform.tpm, platform.parallel, platform.budget) == (None, 1000, 8, Decimal("250.50"))
    assert Team.objects.count() == 2


def test_team_errors_name_their_path_and_nothing_is_applied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = TEAMS.replace("rpm: 600", "rpm: -5").replace("budget_period: monthly", "budget_period: hourly")
    broken = broken.replace("budget: 10", "budget: lots\n    colour: blue") + "  - {name: platform}\n"
    with pytest.raises(CommandError) as info:
        apply(write(tmp_path, CONFIG + broken), monkeypatch)
    message = str(info.value)
    assert "teams[0].rpm: must be a whole number >= 0" in message
    assert "teams[0].budget_period: must be one of total, daily, weekly, monthly" in message
    assert "teams[1].budget: must be a number >= 0" in message and "teams[1].colour: unknown field" in message
    assert "teams[2].name: 'platform' already defined at teams[0]" in message
    assert not Team.objects.exists() and not ProviderAccount.objects.exists()
    with pytest.raises(CommandError, match=r"teams\[0\].budget: Ensure this value is less than or equal to"):
        apply(write(tmp_path, "teams: [{name: rich, budget: 99999999}]\n"), monkeypatch)


def test_the_timeouts_are_set_from_the_file_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    apply(write(tmp_path, "providers:\n  - {name: slow-models, kind: openai, connect_timeout: 5, "
                          "first_byte_timeout: 600, read_timeout: 90}\n"), monkeypatch)
    account = ProviderAccount.objects.get(name="slow-models")
    assert (account.connect_timeout, account.first_byte_timeout, account.read_timeout) == (5, 600, 90)
    assert account.as_account().first_byte_timeout == 600
    with pytest.raises(CommandError) as info:
        apply(write(tmp_path, "providers:\n  - {name: bad, kind: openai, first_byte_timeout: 0, "
                              "read_timeout: fast}\n"), monkeypatch)
    message = str(info.value)
    assert "providers[0].first_byte_timeout" in message and "providers[0].read_timeout: must be a number" in message
    assert not ProviderAccount.objects.filter(name="bad").exists()


def test_a_provider_without_an_option_its_kind_requires_is_refused_with_its_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = "providers: [{name: cf, kind: cloudflare, api_key: cf-token}]\n"
    with pytest.raises(CommandError, match=r"providers\[0\]\.options\.account_id: Account ID \(account_id\) is "
                                           r"required for this kind"):
        apply(write(tmp_path, missing), monkeypatch)
    blank = "providers: [{name: cf, kind: cloudflare, options: {account_id: '  '}}]\n"
    with pytest.raises(CommandError, match=r"options\.account_id: Account ID"):
        apply(write(tmp_path, blank), monkeypatch)
    numeric = "providers: [{name: cf, kind: cloudflare, options: {account_id: 12345}}]\n"
    with pytest.raises(CommandError, match=r"options\.account_id: must be a string \(quote"):
        apply(write(tmp_path, numeric), monkeypatch)
    assert not ProviderAccount.objects.exists()
    apply(write(tmp_path, "providers: [{name: cf, kind: cloudflare, options: {account_id: acc-1, extra: 1}}]\n"),
          monkeypatch)
    account = ProviderAccount.objects.get(name="cf")
    assert account.options == {"account_id": "acc-1", "extra": 1}


def test_declared_options_are_checked_against_their_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = "providers: [{name: o, kind: openai, options: {stream_usage: 'no', headers: [a, b]}}]\n"
    with pytest.raises(CommandError) as info:
        apply(write(tmp_path, bad), monkeypatch)
    assert "providers[0].options.stream_usage: must be true or false" in str(info.value)
    assert "providers[0].options.headers: must be a mapping of header names to values" in str(info.value)
    assert not ProviderAccount.objects.exists()


def test_the_shipped_defaults_may_leave_a_required_option_for_the_admin(tmp_path: Path) -> None:
    out = io.StringIO()
    call_command("gateway_apply", "--defaults", stdout=out)  # (no CLOUDFLARE_ACCOUNT_ID in the environment)
    cloudflare = ProviderAccount.objects.get(name="cloudflare")
    assert not cloudflare.is_configured
    assert "provider account 'cloudflare' (providers[0].options.account_id): Account ID (account_id) is required" in out.getvalue()
    assert "Not configured yet" in out.getvalue()
