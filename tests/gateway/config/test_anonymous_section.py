"""gateway_apply's `anonymous:` section: the anonymous identity's allow-list and limits, round trip and errors;
a live gateway follows a new file at once."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import pytest
from django.core.management import CommandError, call_command

from gateway.models import ANONYMOUS_DIGEST, ApiToken
from tests.conftest import LiveGateway, make_model, make_provider
from tests.fakes.openai_upstream import FakeOpenAI

ANONYMOUS = """
anonymous:
  allowed_models: ["gpt-4o-mini", "@cf/*"]
  rpm: 30
  tpm: 20000
  parallel: 2
  budget: 5
  budget_period: daily
  rpm_per_ip: 5
  tpm_per_ip: 4000
  parallel_per_ip: 1
"""


def apply(tmp_path: Path, text: str) -> str:
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    out = io.StringIO()
    call_command("gateway_apply", str(path), stdout=out)
    return out.getvalue()


def row() -> ApiToken:
    return ApiToken.objects.get(digest=ANONYMOUS_DIGEST)


@pytest.mark.django_db
def test_the_section_sets_the_allow_list_and_limits_and_a_second_file_changes_only_what_it_names(
        tmp_path: Path) -> None:
    assert "+ anonymous access" in apply(tmp_path, ANONYMOUS)
    anonymous = row()
    assert anonymous.name == "anonymous" and anonymous.allowed_model_list() == ["gpt-4o-mini", "@cf/*"]
    assert (anonymous.rpm, anonymous.tpm, anonymous.parallel, anonymous.budget, anonymous.budget_period) == (
        30, 20000, 2, Decimal(5), "daily")
    assert (anonymous.rpm_per_ip, anonymous.tpm_per_ip, anonymous.parallel_per_ip) == (5, 4000, 1)
    assert "~ anonymous access" in apply(tmp_path, ANONYMOUS)  # idempotent: the same row, updated
    assert ApiToken.objects.count() == 1
    apply(tmp_path, "anonymous:\n  rpm: null\n  allowed_models: []\n  active: false\n")
    anonymous = row()
    assert anonymous.rpm is None and anonymous.allowed_model_list() == [] and not anonymous.active
    assert anonymous.tpm == 20000 and anonymous.rpm_per_ip == 5  # left out: kept
    apply(tmp_path, "anonymous:\n")  # an empty section changes nothing
    assert row().tpm == 20000


@pytest.mark.django_db
def test_errors_name_their_path_and_nothing_is_applied(tmp_path: Path) -> None:
    bad = ("teams: [{name: platform}]\nanonymous:\n  rpm: -1\n  rpm_per_ip: many\n  budget_period: hourly\n"
           "  allowed_models: gpt-4o-mini\n  budget: 99999999\n  colour: red\n  active: sometimes\n")
    with pytest.raises(CommandError) as info:
        apply(tmp_path, bad)
    message = str(info.value)
    for problem in ("anonymous.rpm: must be a whole number >= 0", "anonymous.rpm_per_ip: must be a whole number",
                    "anonymous.budget_period: must be one of total, daily, weekly, monthly",
                    "anonymous.allowed_models: must be a list", "anonymous.colour: unknown field",
                    "anonymous.active: must be true or false", "anonymous.budget: Ensure this value"):
        assert problem in message
    with pytest.raises(CommandError, match="one model name or pattern per item"):
        apply(tmp_path, "anonymous: {allowed_models: ['gpt-4o, gpt-4o-mini']}\n")
    with pytest.raises(CommandError, match="anonymous: must be a mapping"):
        apply(tmp_path, "anonymous: [rpm]\n")
    assert not ApiToken.objects.exists()
    from gateway.models import Team

    assert not Team.objects.exists()


def test_a_running_gateway_follows_the_applied_section(live_gateway: LiveGateway, fake_openai: FakeOpenAI,
                                                       settings, tmp_path: Path) -> None:
    settings.GATEWAY = {"ANONYMOUS": True, "LIMITS_STORE": "database"}
    account = make_provider(base_url=fake_openai.base_url)
    make_model("gpt-4o-mini", (account, "gpt-4o-mini"))
    make_model("gpt-4o", (account, "gpt-4o"))

    def chat(model: str) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        return httpx.post(f"{live_gateway.v1}/chat/completions", content=orjson.dumps(body), timeout=30)

    assert chat("gpt-4o").status_code == 200  # no section yet: every model, no limits
    apply(tmp_path, "anonymous:\n  allowed_models: [gpt-4o-mini]\n  rpm_per_ip: 1\n")
    assert chat("gpt-4o").status_code == 403
    ok = chat("gpt-4o-mini")
    assert ok.status_code == 200 and ok.headers["x-ratelimit-limit-requests"] == "1"
    assert chat("gpt-4o-mini").status_code == 429
