"""/admin/usage/: staff only, the admin's look, totals/breakdown/charts of the period, and its CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from gateway.models import UsageDaily
from gateway.reports import usage

pytestmark = pytest.mark.django_db

URL = "/admin/usage/"


def add(day: dt.date, team: int, model: str, provider: str, requests: int, cost: str) -> None:
    UsageDaily.objects.create(day=day, team_id=team, team_name=f"team{team}", token_id=team * 10,
                              token_name=f"tok{team}", model=model, provider=provider, requests=requests,
                              errors=1, prompt_tokens=requests * 100, completion_tokens=requests * 10,
                              cost=Decimal(cost), unknown_cost_requests=1)


def test_the_url_is_the_admins_and_the_index_links_it(admin_client: Client) -> None:
    assert reverse("admin:usage") == URL
    assert f'href="{URL}"' in admin_client.get(reverse("admin:index")).content.decode()


def test_non_staff_are_sent_to_the_login_page(client: Client) -> None:
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
    User.objects.create_user("plain", password="pw-not-staff-123")
    client.login(username="plain", password="pw-not-staff-123")
    response = client.get(URL + "?format=csv")
    assert response.status_code == 302 and reverse("admin:login") in response["Location"]


def test_the_default_page_shows_this_month(admin_client: Client) -> None:
    month = usage.this_month()
    add(month.start, 1, "m", "p", 4, "0.4")
    add(month.start - dt.timedelta(days=1), 1, "m", "p", 1000, "9")  # last month: not counted
    response = admin_client.get(URL)
    page = response.content.decode()
    assert response.status_code == 200 and response.context["period"] == month
    assert '<td data-total="requests">4</td>' in page and '<td data-total="cost">$0.4</td>' in page
    assert "admin/base_site.html" in [t.name for t in response.templates]
    assert "no-cache" in response["Cache-Control"] or "no-store" in response["Cache-Control"]


def test_totals_breakdown_and_one_bar_per_day(admin_client: Client) -> None:
    start = dt.date(2026, 4, 1)
    add(start, 1, "gpt-a", "p1", 5, "0.5")
    add(start, 2, "gpt-b", "p1", 3, "0.25")
    add(start + dt.timedelta(days=2), 1, "gpt-b", "p2", 2, "1")
    response = admin_client.get(URL, {"from": "2026-04-01", "to": "2026-04-10", "by": "model"})
    page = response.content.decode()
    totals = response.context["totals"]
    assert (totals["requests"], totals["errors"], totals["prompt_tokens"], totals["completion_tokens"],
            totals["cost"], totals["unknown_cost_requests"]) == (10, 3, 1000, 100, Decimal("1.75"), 3)
    assert [(r["model"], r["requests"]) for r in response.context["rows"]] == [("gpt-a", 5), ("gpt-b", 5)]  # ties by name
    svgs = re.findall(r"<svg[^>]*usage-chart.*?</svg>", page, re.S)
    assert len(svgs) == 3 and all(len(re.findall(r'<rect class="bar"', s)) == 10 for s in svgs)
    assert "<script" not in page.split("<!-- END Content -->")[0].split('id="content-main"')[1]
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing from elsewhere


def read_csv(response) -> list[list[str]]:
    assert response["Content-Type"].startswith("text/csv") and "attachment" in response["Content-Disposition"]
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_csv_has_the_breakdowns_columns_only_ordered_by_day(admin_client: Client) -> None:
    start = dt.date(2026, 4, 1)
    add(start + dt.timedelta(days=1), 1, "gpt-a", "p1", 5, "0.5")
    add(start, 2, "gpt-b", "p1", 3, "0.25")
    add(start, 1, "gpt-b", "p2", 2, "1")
    period = {"from": "2026-04-01", "to": "2026-04-30", "format": "csv"}
    everything = read_csv(admin_client.get(URL, {**period, "by": ["team", "token", "model", "provider"]}))
    assert everything == [
        ["day", "team", "token", "model", "provider", "requests", "errors", "prompt_tokens", "completion_tokens",
         "cost_usd"],
        ["2026-04-01", "team1", "tok1", "gpt-b", "p2", "2", "1", "200", "20", "1"],
        ["2026-04-01", "team2", "tok2", "gpt-b", "p1", "3", "1", "300", "30", "0.25"],
        ["2026-04-02", "team1", "tok1", "gpt-a", "p1", "5", "1", "500", "50", "0.5"],
    ]
    by_provider = read_csv(admin_client.get(URL, {**period, "by": "provider"}))
    assert by_provider == [
        ["day", "provider", "requests", "errors", "prompt_tokens", "completion_tokens", "cost_usd"],
        ["2026-04-01", "p1", "3", "1", "300", "30", "0.25"],
        ["2026-04-01", "p2", "2", "1", "200", "20", "1"],
        ["2026-04-02", "p1", "5", "1", "500", "50", "0.5"],
    ]
    assert read_csv(admin_client.get(URL, period))[0][:2] == ["day", "model"]  # the default breakdown


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(admin_client: Client) -> None:
    UsageDaily.objects.create(day=timezone.localdate(), team_id=1, team_name="=HYPERLINK(1)", requests=1)
    rows = read_csv(admin_client.get(URL, {"format": "csv", "by": "team"}))
    assert rows[1][1] == "'=HYPERLINK(1)"


def test_bad_parameters_are_reported_not_an_error(admin_client: Client) -> None:
    response = admin_client.get(URL, {"from": "yesterday", "by": "nonsense"})
    assert response.status_code == 200 and "not a date" in response.content.decode()
    assert response.context["by"] == ("model",)
