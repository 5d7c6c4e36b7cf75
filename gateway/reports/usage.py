"""The usage report's numbers, read from UsageDaily only (never the raw log), with aggregate queries:
a period of days, its totals, a breakdown by team / token / model / provider, and per-day series."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Max, QuerySet, Sum
from django.utils import timezone

from gateway.models import UsageDaily

METRICS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost", "unknown_cost_requests")
# Breakdown dimension -> (the column grouped by, the column holding its name or None).
DIMENSIONS: dict[str, tuple[str, str | None]] = {
    "team": ("team_id", "team_name"), "token": ("token_id", "token_name"),
    "model": ("model", None), "provider": ("provider", None),
}
NONE_LABELS = {"team": "(no team)", "token": "(no token)", "model": "(none)", "provider": "(none)"}
DEFAULT_BY = ("model",)
MAX_DAYS = 366


@dataclass(frozen=True)
class Period:
    """Days from ``start`` to ``end``, both included, in settings.TIME_ZONE."""

    start: dt.date
    end: dt.date

    @property
    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=n) for n in range((self.end - self.start).days + 1)]


def this_month(today: dt.date | None = None) -> Period:
    today = today or timezone.localdate()
    first = today.replace(day=1)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return Period(first, following - dt.timedelta(days=1))


def parse_period(params: Mapping[str, str], today: dt.date | None = None) -> tuple[Period, list[str]]:
    """The period the GET parameters ``from`` and ``to`` (YYYY-MM-DD) name, and what was wrong with them.
    A missing bound is this month's; a period longer than MAX_DAYS is shortened to its last MAX_DAYS."""
    default, problems = this_month(today), []
    bounds = {}
    for name, fallback in (("from", default.start), ("to", default.end)):
        raw = (params.get(name) or "").strip()
        try:
            bounds[name] = dt.date.fromisoformat(raw) if raw else fallback
        except ValueError:
            problems.append(f"{name!r} is not a date (YYYY-MM-DD): this month's is used.")
            bounds[name] = fallback
    start, end = bounds["from"], bounds["to"]
    if start > end:
        problems.append("'from' is after 'to': they were swapped.")
        start, end = end, start
    if (end - start).days >= MAX_DAYS:
        problems.append(f"The period is limited to {MAX_DAYS} days: its last {MAX_DAYS} are shown.")
        start = end - dt.timedelta(days=MAX_DAYS - 1)
    return Period(start, end), problems


def parse_by(values: Iterable[str]) -> tuple[str, ...]:
    """The breakdown's dimensions, in the canonical order; the default when none (valid) is given."""
    chosen = {v for value in values for v in value.split(",")}
    return tuple(d for d in DIMENSIONS if d in chosen) or DEFAULT_BY


def rows_in(period: Period) -> QuerySet[UsageDaily]:
    return UsageDaily.objects.filter(day__gte=period.start, day__lte=period.end)


def _sums() -> dict[str, Sum]:
    return {f"sum_{m}": Sum(m) for m in METRICS}


def _metrics(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {m: row.get(f"sum_{m}") or 0 for m in METRICS}
    out["cost"] = Decimal(out["cost"])
    return out


def totals(period: Period) -> dict[str, Any]:
    """Requests, errors, prompt and completion tokens, cost (USD, known costs) and requests of unknown cost."""
    return _metrics(rows_in(period).aggregate(**_sums()))


def _grouped(period: Period, by: tuple[str, ...], with_day: bool) -> QuerySet:
    keys = (["day"] if with_day else []) + [DIMENSIONS[d][0] for d in by]
    names = {f"{d}_label": Max(DIMENSIONS[d][1]) for d in by if DIMENSIONS[d][1]}
    return rows_in(period).values(*keys).annotate(**names, **_sums())


def _labelled(row: Mapping[str, Any], by: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"day": row.get("day")}
    for dimension in by:
        key, name = DIMENSIONS[dimension]
        value = row[f"{dimension}_label"] if name else row[key]
        out[dimension] = value or (NONE_LABELS[dimension] if not row[key] else f"#{row[key]}")
    out["labels"] = [out[d] for d in by]
    return out | _metrics(row)


def breakdown(period: Period, by: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per combination of the chosen dimensions, most requests first."""
    rows = _grouped(period, by, with_day=False).order_by("-sum_requests", *(DIMENSIONS[d][0] for d in by))
    return [_labelled(row, by) for row in rows]


def per_day(period: Period, by: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per day and combination of the chosen dimensions (days without usage left out), by day."""
    rows = _grouped(period, by, with_day=True).order_by("day", *(DIMENSIONS[d][0] for d in by))
    return [_labelled(row, by) for row in rows]


def daily_series(period: Period) -> list[dict[str, Any]]:
    """Every day of the period (zeros where nothing was used): requests, tokens (prompt + completion), cost."""
    found = {row["day"]: _metrics(row) for row in rows_in(period).values("day").annotate(**_sums())}
    empty = _metrics({})
    return [{"day": day, **(m := found.get(day, empty)), "tokens": m["prompt_tokens"] + m["completion_tokens"]}
            for day in period.days]
