"""gateway_apply: a model's `fallbacks` (checked names) and a provider's cooldown overrides."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from gateway.models import ModelEntry, ProviderAccount

pytestmark = pytest.mark.django_db

CONFIG = """
providers:
  - {name: anthropic-main, kind: anthropic, cooldown_failures: 5, cooldown_window_seconds: 30, cooldown_seconds: 120}
  - {name: openai-main, kind: openai}
models:
  - name: claude-sonnet-4-5
    deployments: [{provider: anthropic-main, model: claude-sonnet-4-5}]
    fallbacks: [gpt-4.1]
  - name: gpt-4.1
    deployments: [{provider: openai-main, model: gpt-4.1}]
"""


def apply(tmp_path: Path, text: str) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    call_command("gateway_apply", str(path), stdout=io.StringIO())


def test_fallbacks_and_cooldown_overrides_are_applied(tmp_path: Path) -> None:
    apply(tmp_path, CONFIG)
    assert ModelEntry.objects.get(name="claude-sonnet-4-5").fallback_names() == ["gpt-4.1"]
    account = ProviderAccount.objects.get(name="anthropic-main")
    assert (account.cooldown_failures, account.cooldown_window_seconds, account.cooldown_seconds) == (5, 30, 120)
    assert ProviderAccount.objects.get(name="openai-main").cooldown_failures is None  # the setting's
    apply(tmp_path, CONFIG.replace("fallbacks: [gpt-4.1]", "fallbacks: []").replace("cooldown_failures: 5",
                                                                                   "cooldown_failures: null"))
    assert ModelEntry.objects.get(name="claude-sonnet-4-5").fallback_names() == []
    assert ProviderAccount.objects.get(name="anthropic-main").cooldown_failures is None


@pytest.mark.parametrize(("fallbacks", "problem"), [
    ("[gpt-5]", "No model named 'gpt-5'"),
    ("[claude-sonnet-4-5]", "is this model itself"),
    ("['gpt-*']", "is a pattern"),
    ("gpt-4.1", "must be a list of model names"),
    ("[1]", "must be a list of model names"),
])
def test_bad_fallbacks_are_refused_with_their_path_and_nothing_is_applied(
        tmp_path: Path, fallbacks: str, problem: str) -> None:
    with pytest.raises(CommandError) as raised:
        apply(tmp_path, CONFIG.replace("fallbacks: [gpt-4.1]", f"fallbacks: {fallbacks}") + "  - name: 'gpt-*'\n")
    assert "models[0].fallbacks" in str(raised.value) and problem in str(raised.value)
    assert not ModelEntry.objects.exists()


def test_a_negative_cooldown_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r"providers\[0\]\.cooldown_seconds"):
        apply(tmp_path, CONFIG.replace("cooldown_seconds: 120", "cooldown_seconds: -1"))
