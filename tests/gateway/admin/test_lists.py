"""The admin's lists: tokens and teams with their spend this budget period, models with their deployments,
each page in a number of queries that does not grow with its rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from gateway.models import ApiToken, Team, UsageDaily
from gateway.usage.daily import day_of
from tests.conftest import make_model, make_provider

pytestmark = pytest.mark.django_db


def today() -> dt.date:
    return day_of(timezone.now())


def spent(day: dt.date, usd: str, token: ApiToken | None = None, team: Team | None = None, model: str = "m") -> None:
    UsageDaily.objects.create(day=day, token_id=token.pk if token else 0, team_id=team.pk if team else 0,
                              model=model, requests=1, cost=Decimal(usd))


def token(name: str, **fields: object) -> ApiToken:
    row = ApiToken(name=name, **fields)
    row.set_new_secret()
    row.save()
    return row


def cells(page: str, column: str) -> list[str]:
    """The text of one column's cells (``field-<column>``), in row order."""
    found = []
    for part in page.split(f'class="field-{column}"')[1:]:
        found.append(part.split(">", 1)[1].split("</td>", 1)[0].strip())
    return found


def test_the_token_list_shows_each_tokens_spend_in_its_budget_period(admin_client: Client) -> None:
    day = today()
    last_month = day.replace(day=1) - dt.timedelta(days=1)
    monthly = token("a-monthly", budget=Decimal("25"), budget_period="monthly")
    daily = token("b-daily", budget=Decimal("2"), budget_period="daily")
    total = token("c-total", budget=Decimal("100"))
    unbudgeted = token("d-none")
    for row in (monthly, daily, total, unbudgeted):
        spent(day, "1.5", row)
        spent(day, "0.25", row, model="other")  # several rows a day: summed
        spent(last_month, "10", row)
    spent(day - dt.timedelta(days=1), "3", daily) if day.day > 1 else spent(last_month, "3", daily)
    page = admin_client.get(reverse("admin:gateway_apitoken_changelist"), {"o": "1"}).content.decode()
    assert "Spend this period" in page
    assert cells(page, "period_spend") == ["$1.75 of $25 (monthly)", "$1.75 of $2 (daily)",
                                           "$11.75 of $100 (total)", "$1.75 this month"]


def test_the_team_list_shows_its_tokens_spend_together_and_sorts_by_it(admin_client: Client) -> None:
    platform = Team.objects.create(name="platform", budget=Decimal("50"), budget_period="weekly")
    research = Team.objects.create(name="research")
    spent(today(), "4", team=platform)
    spent(today(), "0.5", team=platform, model="other")
    spent(today(), "0.00012", team=research)
    page = admin_client.get(reverse("admin:gateway_team_changelist")).content.decode()
    assert cells(page, "period_spend") == ["$4.50 of $50 (weekly)", "$0.00012 this month"]
    Team.objects.create(name="idle")
    by_spend = admin_client.get(reverse("admin:gateway_team_changelist"), {"o": "-4"}).content.decode()
    assert cells(by_spend, "period_spend") == ["$4.50 of $50 (weekly)", "$0.00012 this month", "$0 this month"]


def test_the_model_list_shows_each_models_deployments_in_the_order_tried(admin_client: Client) -> None:
    main, backup = make_provider("openai-main"), make_provider("backup", kind="openai_compatible",
                                                               base_url="http://127.0.0.1:9/v1")
    make_model("gpt-4o-mini", (main, "gpt-4o-mini-2024-07-18"), (backup, "llama3"))
    make_model("gpt-*", (main, ""))
    make_model("unrouted")
    page = admin_client.get(reverse("admin:gateway_modelentry_changelist")).content.decode()
    # rows in name order: gpt-*, gpt-4o-mini, unrouted
    assert cells(page, "deployments_shown") == [
        "<div>openai-main → (requested name)</div>",
        "<div>openai-main → gpt-4o-mini-2024-07-18</div><div>backup → llama3</div>", "none"]


def queries(fetch: Callable[[], object]) -> int:
    with CaptureQueriesContext(connection) as captured:
        fetch()
    return len(captured.captured_queries)


@pytest.mark.parametrize("page", ["apitoken", "team", "modelentry"])
def test_a_list_pages_queries_do_not_grow_with_its_rows(admin_client: Client, page: str) -> None:
    url = reverse(f"admin:gateway_{page}_changelist")
    account = make_provider()

    def add(first: int, count: int) -> None:
        for i in range(first, first + count):
            team = Team.objects.create(name=f"team-{i}", budget=Decimal("5"), budget_period="monthly")
            row = token(f"token-{i}", team=team, budget=Decimal(i), budget_period="daily")
            spent(today(), "1", row, team)
            make_model(f"model-{i}", (account, f"upstream-{i}"), (account, f"other-{i}"))

    add(0, 2)
    admin_client.get(url)  # (the session and anything cached once)
    few = queries(lambda: admin_client.get(url))
    add(2, 8)
    many = queries(lambda: admin_client.get(url))
    assert admin_client.get(url).content.decode().count("token-9" if page == "apitoken" else "-9") >= 1
    assert many == few, f"{page}: {few} queries for 2 rows, {many} for 10"
