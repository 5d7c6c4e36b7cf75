"""The admin index's dashboard: today and this month, the top teams/tokens/models, provider health."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from gateway.models import ProviderAccount, RequestLog, UsageDaily
from tests.conftest import make_provider

pytestmark = pytest.mark.django_db


def add(day: dt.date, team: int, model: str, requests: int, cost: str) -> None:
    UsageDaily.objects.create(day=day, team_id=team, team_name=f"team{team}", token_id=team * 10,
                              token_name=f"tok{team}", model=model, provider="acct", requests=requests, errors=1,
                              prompt_tokens=requests * 100, completion_tokens=requests * 10, cost=Decimal(cost))


def cells(page: str, caption: str) -> list[list[str]]:
    """The rows of the dashboard table with this caption, as lists of cell texts."""
    table = page.split(f"<caption>{caption}</caption>", 1)[1].split("</table>", 1)[0]
    return [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, re.S)]
            for r in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>", 1)[1], re.S)]


def test_the_index_shows_today_this_month_and_the_top_teams_tokens_models(admin_client: Client) -> None:
    today = timezone.localdate()
    earlier = today.replace(day=1) if today.day > 1 else None
    add(today, 1, "gpt-4o-mini", 3, "0.5")
    add(today, 2, "claude-haiku", 7, "0.25")
    if earlier:
        add(earlier, 1, "gpt-4o-mini", 10, "1")
    add(today.replace(day=1) - dt.timedelta(days=1), 2, "old-model", 99, "9")  # last month: not counted
    page = admin_client.get(reverse("admin:index")).content.decode()
    usage = cells(page, "Usage")
    month_requests = 10 + (10 if earlier else 0)
    assert usage[0][:3] == ["Today", "10", "2"] and usage[0][4] == "$0.75"
    assert usage[1][1] == str(month_requests) and "old-model" not in page
    teams = cells(page, "Top teams this month")
    assert teams[0][0] == ("team1" if earlier else "team2")
    assert [row[0] for row in cells(page, "Top models this month")] == (
        ["gpt-4o-mini", "claude-haiku"] if earlier else ["claude-haiku", "gpt-4o-mini"])
    assert 'href="/admin/usage/"' in page


def test_provider_accounts_show_their_health(admin_client: Client) -> None:
    now = timezone.now()
    make_provider("healthy")
    make_provider("broken", base_url="http://127.0.0.1:9/v1")
    make_provider("broken2")
    ProviderAccount.objects.filter(name="healthy").update(last_success_at=now)
    ProviderAccount.objects.filter(name="broken2").update(
        last_success_at=now - dt.timedelta(hours=1), last_error_at=now, last_error="upstream answered 500")
    make_provider("nokey", api_key="")
    rows = {row[0]: row for row in cells(admin_client.get(reverse("admin:index")).content.decode(),
                                        "Provider accounts")}
    assert rows["healthy"][2] == "ok" and rows["broken"][2] == "not used yet"
    assert rows["broken2"][2] == "failing" and "upstream answered 500" in rows["broken2"][5]
    assert rows["nokey"][2] == "not configured"


def test_the_dashboard_does_not_read_the_request_log(admin_client: Client) -> None:
    RequestLog.objects.create(created_at=timezone.now(), request_id="r", endpoint="chat.completions", status_code=200)
    with CaptureQueriesContext(connection) as queries:
        assert admin_client.get(reverse("admin:index")).status_code == 200
    assert not [q for q in queries.captured_queries if RequestLog._meta.db_table in q["sql"]]


def test_deployments_in_cooldown_are_listed(admin_client: Client) -> None:
    import asyncio

    from gateway.routing.cooldowns import Policy, cooldowns
    from gateway.routing.registry import Route

    account = make_provider("flaky")
    key = Route(account.as_account(), "gpt-4o-mini", 1, 0).key("gpt-4o-mini")
    for _ in range(3):
        asyncio.run(cooldowns.failed(key, Policy(3, 60.0, 30.0), "500 server_error: boom"))
    rows = cells(admin_client.get(reverse("admin:index")).content.decode(), "Deployments in cooldown")
    assert rows[0][:2] == ["flaky", "gpt-4o-mini"] and "boom" in rows[0][3]
