"""An admin's first day, in a real browser: log in, create a team with a budget and a token with an
rpm limit (its secret shown exactly once), add a provider account (only the selected kind's options
shown; its key never shown again) and a
model with a deployment, call /v1 with the token, find the calls in the request log, the usage
report and the dashboard, revoke the token and see the next call refused."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai
import pytest
from django.contrib.auth.models import User

from gateway.models import ApiToken, ModelEntry, ProviderAccount, Team
from tests.conftest import UPSTREAM_KEY, LiveGateway
from tests.fakes.openai_upstream import FakeOpenAI

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-admin-password-1234"
T = TypeVar("T")
_orm = ThreadPoolExecutor(1)


def orm(query: Callable[[], T]) -> T:
    """Run a database query off this thread: Playwright's sync API keeps an event loop running here,
    where Django refuses synchronous queries."""
    return _orm.submit(query).result()


class Visits:
    """The page, a screenshot of every page shown, and the HTML of every page seen after a moment."""

    def __init__(self, page: Any, folder: Path) -> None:
        self.page, self.folder, self.count = page, folder, 0
        self.seen: list[str] = []

    def shot(self, name: str) -> str:
        self.count += 1
        self.page.screenshot(path=str(self.folder / f"{self.count:02d}-{name}.png"), full_page=True)
        html = self.page.content()
        self.seen.append(html)
        return html

    def go(self, base: str, path: str, name: str) -> str:
        self.page.goto(base + path)
        return self.shot(name)


def test_an_admin_issues_a_token_and_reads_its_usage(live_gateway: LiveGateway, fake_openai: FakeOpenAI,
                                                      browser: Any, screenshots: Path) -> None:
    orm(lambda: User.objects.create_superuser("admin", "admin@example.com", PASSWORD))
    base = live_gateway.url
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    visits = Visits(page, screenshots)

    # log in
    visits.go(base, "/admin/", "login")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    assert 'id="dashboard"' in visits.shot("dashboard-empty")

    # a team with a monthly budget
    visits.go(base, "/admin/gateway/team/add/", "team-add")
    page.fill("#id_name", "platform")
    page.fill("#id_budget", "25")
    page.select_option("#id_budget_period", "monthly")
    page.click("input[name=_save]")
    visits.shot("team-list")
    team = orm(lambda: Team.objects.get(name="platform"))
    assert team.budget == 25 and team.budget_period == "monthly"

    # a token in it with an rpm limit: the secret exactly once
    visits.go(base, "/admin/gateway/apitoken/add/", "token-add")
    page.fill("#id_name", "web-app")
    page.select_option("#id_team", str(team.pk))
    page.fill("#id_rpm", "30")
    page.click("input[name=_save]")
    created = visits.shot("token-created")
    secret = page.input_value("#token-secret")
    assert secret.startswith("sk-gw-") and f"export OPENAI_API_KEY={secret}" in created
    created_url = page.url
    page.reload()
    assert secret not in visits.shot("token-created-reloaded")
    assert orm(lambda: list(ApiToken.objects.values_list("rpm", flat=True))) == [30]

    # a provider account: only the selected kind's options are shown (a Cloudflare account's id; OpenAI's
    # organization, project, ...); the key typed in is never shown again
    visits.go(base, "/admin/gateway/provideraccount/add/", "provider-add")
    page.fill("#id_name", "openai-main")
    page.select_option("#id_kind", "cloudflare")
    visits.shot("provider-add-cloudflare-options")
    assert page.is_visible("#id_options__cloudflare__account_id")
    assert not page.is_visible("#id_options__openai__organization")
    page.select_option("#id_kind", "gemini")  # no options: no Options section
    assert not page.is_visible("#id_options__cloudflare__account_id") and not page.is_visible("fieldset.provider-options")
    page.select_option("#id_kind", "openai")
    visits.shot("provider-add-openai-options")
    assert page.is_visible("#id_options__openai__organization") and page.is_checked("#id_options__openai__stream_usage")
    assert not page.is_visible("#id_options__cloudflare__account_id")
    assert not page.is_visible("#id_options__openai_compatible__organization")
    page.fill("#id_options__openai__organization", "org-journey")
    page.fill("#id_base_url", fake_openai.base_url)
    page.fill("#id_api_key", UPSTREAM_KEY)
    page.click("input[name=_save]")
    visits.shot("provider-list")
    account = orm(lambda: ProviderAccount.objects.get(name="openai-main"))
    assert orm(account.get_api_key) == UPSTREAM_KEY and account.options == {"organization": "org-journey"}
    visits.go(base, f"/admin/gateway/provideraccount/{account.pk}/change/", "provider-change")

    # a model with a deployment on that account (the provider picked in the autocomplete widget)
    visits.go(base, "/admin/gateway/modelentry/add/", "model-add")
    page.fill("#id_name", "gpt-4o-mini")
    page.fill("#id_input_price_per_million", "0.15")
    page.fill("#id_output_price_per_million", "0.6")
    page.click("#deployments-0 .select2-selection")
    page.fill(".select2-search__field", "openai")
    page.click(".select2-results__option >> text=openai-main")
    page.fill("#id_deployments-0-upstream_model", "gpt-4o-mini")
    page.click("input[name=_save]")
    visits.shot("model-list")
    assert orm(lambda: ModelEntry.objects.get(name="gpt-4o-mini").deployments.get().provider_id) == account.pk

    # the token at work
    client = openai.OpenAI(base_url=live_gateway.v1, api_key=secret, max_retries=0)
    for text in ("hello", "again"):
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
        assert reply.choices[0].message.content == f"Echo: {text}"
    orm(live_gateway.flush_logs)

    log = visits.go(base, "/admin/gateway/requestlog/", "request-log")
    assert log.count("web-app") >= 2 and "gpt-4o-mini" in log
    # every column on screen at 1920 px, the last (session) included
    assert page.evaluate("document.querySelector('#result_list').getBoundingClientRect().right") <= 1920
    report = visits.go(base, "/admin/usage/?by=token", "usage-report")
    assert "web-app" in report and "<svg" in report
    dashboard = visits.go(base, "/admin/", "dashboard")
    assert "web-app" in dashboard and "openai-main" in dashboard

    # revoked: the next call is refused
    tokens = visits.go(base, "/admin/gateway/apitoken/", "token-list")
    assert "Spend this period" in tokens and "this month" in tokens  # (no budget of its own: this month's)
    page.check("input[name=_selected_action]")
    page.select_option("select[name=action]", "revoke")
    page.click("button[name=index]")
    visits.shot("token-revoked")
    assert orm(lambda: ApiToken.objects.get().active) is False
    refused = httpx.post(f"{live_gateway.v1}/chat/completions", headers={"Authorization": f"Bearer {secret}"},
                         json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert refused.status_code == 401

    # the secret was on the page that showed it and nowhere else; the provider key never after it was typed
    pages_after = visits.seen[visits.seen.index(created) + 1:]
    assert not [html for html in pages_after if secret in html], created_url
    assert not [html for html in visits.seen if UPSTREAM_KEY in html]
