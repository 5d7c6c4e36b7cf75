"""The "spend this period" column of the token and team lists: one annotation on the page's query.

The spend is the logged cost (``UsageDaily``, the daily sums the request-log writer keeps with the rows,
known costs only) since the start of the row's budget period (``budget_period``: today, this week,
this month, or ever for ``total``, in ``TIME_ZONE`` as the budget counts it); a row without a budget
shows this month's. It is what the budget counters start from, without the requests still in flight
or the last seconds' rows not yet written.
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

from django.db.models import Case, DecimalField, OuterRef, QuerySet, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce

from gateway.access.windows import PERIODS, period
from gateway.models import Limited, UsageDaily

SPEND = "period_spend"
HELP = "spend this period"  # the column's header; its cells say which period
_MONEY = DecimalField(max_digits=18, decimal_places=8)


def period_starts(now: float | None = None) -> dict[str, dt.date | None]:
    """The first day of each budget period holding ``now`` (``total``: None, from the first day)."""
    now = time.time() if now is None else now
    return {name: None if name == "total" else dt.date.fromisoformat(period(name, now)[0]) for name in PERIODS}


def _summed(column: str, since: dt.date | None) -> Subquery:
    rows = UsageDaily.objects.filter(**{column: OuterRef("pk")})
    if since is not None:
        rows = rows.filter(day__gte=since)
    return Subquery(rows.order_by().values(column).annotate(spent=Sum("cost")).values("spent")[:1],
                    output_field=_MONEY)


def with_spend(queryset: QuerySet, column: str, now: float | None = None) -> QuerySet:
    """``queryset`` (tokens or teams) with ``period_spend``: their spend in their budget period, this
    month's without a budget; ``column`` is UsageDaily's id column for them (token_id or team_id)."""
    starts = period_starts(now)
    spent = Case(*(When(budget__isnull=False, budget_period=name, then=_summed(column, start))
                   for name, start in starts.items()),
                 default=_summed(column, starts["monthly"]), output_field=_MONEY)
    return queryset.annotate(**{SPEND: Coalesce(spent, Value(Decimal(0)), output_field=_MONEY)})


def shown(row: Limited) -> str:
    """The cell: "$1.25 of $50 (monthly)" for a row with a budget, "$1.25 this month" without one."""
    spent = getattr(row, SPEND, None)
    if spent is None:
        return "-"
    amount = "$0" if not spent else f"${spent:,.2f}" if spent >= Decimal("0.01") else f"${spent.normalize():f}"
    if row.budget is None:
        return f"{amount} this month"
    return f"{amount} of ${row.budget.normalize():f} ({row.budget_period})"
