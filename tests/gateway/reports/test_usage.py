"""The usage report's numbers: totals, breakdown and per-day series equal the UsageDaily rows of the period."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db.models import Sum

from gateway.models import UsageDaily
from gateway.reports import usage

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 3, 10)


def row(day: dt.date, team: int, token: int, model: str, provider: str, requests: int, cost: str = "0.5",
        **extra: int) -> UsageDaily:
    return UsageDaily.objects.create(
        day=day, team_id=team, team_name=f"team{team}" if team else "", token_id=token, token_name=f"tok{token}",
        model=model, provider=provider, requests=requests, errors=extra.get("errors", 1),
        prompt_tokens=10 * requests, completion_tokens=3 * requests, cost=Decimal(cost),
        unknown_cost_requests=extra.get("unknown", 0))


@pytest.fixture
def rows() -> list[UsageDaily]:
    return [
        row(DAY, 1, 11, "gpt-a", "p1", 5),
        row(DAY, 1, 12, "gpt-b", "p2", 7, unknown=2),
        row(DAY + dt.timedelta(days=1), 2, 21, "gpt-a", "p1", 3, cost="1.25"),
        row(DAY + dt.timedelta(days=2), 0, 0, "gpt-a", "p2", 2),
        row(DAY - dt.timedelta(days=1), 1, 11, "gpt-a", "p1", 100),  # outside the period
        row(DAY + dt.timedelta(days=30), 1, 11, "gpt-a", "p1", 100),  # outside the period
    ]


PERIOD = usage.Period(DAY, DAY + dt.timedelta(days=5))


def test_totals_equal_the_sums_of_the_period_rows(rows: list[UsageDaily]) -> None:
    expected = UsageDaily.objects.filter(day__range=(PERIOD.start, PERIOD.end)).aggregate(
        r=Sum("requests"), e=Sum("errors"), p=Sum("prompt_tokens"), c=Sum("completion_tokens"), cost=Sum("cost"),
        u=Sum("unknown_cost_requests"))
    got = usage.totals(PERIOD)
    assert (got["requests"], got["errors"], got["prompt_tokens"], got["completion_tokens"], got["cost"],
            got["unknown_cost_requests"]) == (17, 4, 170, 51, Decimal("2.75"), 2)
    assert got["requests"] == expected["r"] and got["cost"] == expected["cost"] and got["unknown_cost_requests"] == 2


def test_an_empty_period_totals_zero() -> None:
    assert usage.totals(PERIOD) == dict.fromkeys(usage.METRICS, 0) | {"cost": Decimal(0)}


def test_breakdown_by_model_and_by_team_and_provider(rows: list[UsageDaily]) -> None:
    by_model = {r["model"]: (r["requests"], r["cost"]) for r in usage.breakdown(PERIOD, ("model",))}
    assert by_model == {"gpt-a": (10, Decimal("2.25")), "gpt-b": (7, Decimal("0.5"))}
    by_team = [(r["team"], r["provider"], r["requests"]) for r in usage.breakdown(PERIOD, ("team", "provider"))]
    assert by_team == [("team1", "p2", 7), ("team1", "p1", 5), ("team2", "p1", 3), ("(no team)", "p2", 2)]
    assert sum(r["requests"] for r in usage.breakdown(PERIOD, ("token",))) == usage.totals(PERIOD)["requests"]


def test_a_renamed_team_stays_one_row() -> None:
    row(DAY, 1, 11, "m", "p", 1)
    UsageDaily.objects.create(day=DAY + dt.timedelta(days=1), team_id=1, team_name="renamed", token_id=11,
                              model="m", provider="p", requests=2)
    assert [(r["team"], r["requests"]) for r in usage.breakdown(PERIOD, ("team",))] == [("team1", 3)]


def test_daily_series_has_every_day_with_zeros(rows: list[UsageDaily]) -> None:
    series = usage.daily_series(PERIOD)
    assert [r["day"] for r in series] == PERIOD.days and len(series) == 6
    assert [r["requests"] for r in series] == [12, 3, 2, 0, 0, 0]
    assert series[0]["tokens"] == 12 * 13 and series[1]["cost"] == Decimal("1.25")


def test_the_default_period_is_this_month() -> None:
    assert usage.this_month(dt.date(2026, 2, 14)) == usage.Period(dt.date(2026, 2, 1), dt.date(2026, 2, 28))
    assert usage.this_month(dt.date(2026, 12, 31)) == usage.Period(dt.date(2026, 12, 1), dt.date(2026, 12, 31))
    period, problems = usage.parse_period({}, today=dt.date(2028, 2, 3))
    assert period == usage.Period(dt.date(2028, 2, 1), dt.date(2028, 2, 29)) and problems == []


def test_period_parameters_are_checked() -> None:
    today = dt.date(2026, 5, 5)
    assert usage.parse_period({"from": "2026-01-02", "to": "2026-01-09"}, today)[0] == usage.Period(
        dt.date(2026, 1, 2), dt.date(2026, 1, 9))
    period, problems = usage.parse_period({"from": "nope", "to": "2026-05-20"}, today)
    assert period == usage.Period(dt.date(2026, 5, 1), dt.date(2026, 5, 20)) and "not a date" in problems[0]
    assert usage.parse_period({"from": "2026-05-09", "to": "2026-05-02"}, today)[0].start == dt.date(2026, 5, 2)
    long, problems = usage.parse_period({"from": "2000-01-01", "to": "2026-05-02"}, today)
    assert len(long.days) == usage.MAX_DAYS and long.end == dt.date(2026, 5, 2) and problems


def test_by_keeps_the_canonical_order_and_defaults_to_model() -> None:
    assert usage.parse_by(["provider", "team"]) == ("team", "provider")
    assert usage.parse_by(["model,token"]) == ("token", "model")
    assert usage.parse_by(["bogus"]) == usage.parse_by([]) == ("model",)
