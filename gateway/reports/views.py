"""/admin/usage/: the usage report (totals, a breakdown, per-day charts, CSV), staff only (wrapped in
admin.site.admin_view in gateway/admin/__init__.py)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.http import urlencode

from gateway.reports import charts, usage

CSV_METRICS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost_usd")
CHARTS = (("Requests per day", "requests", {}), ("Tokens per day (prompt + completion)", "tokens", {}),
          ("Cost per day (USD, known costs)", "cost", {"label": lambda v: f"${charts.compact(v)}"}))
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def usd(value: Decimal) -> str:
    return f"{value.quantize(Decimal('1e-8')).normalize():f}"


def with_usd(row: dict[str, Any]) -> dict[str, Any]:
    return row | {"cost_usd": usd(row["cost"])}


def cell(value: Any) -> str:
    """A CSV cell; a name a spreadsheet would run as a formula is quoted with a leading apostrophe."""
    text = str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def usage_csv(period: usage.Period, by: tuple[str, ...]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (f'attachment; filename="usage_{period.start.isoformat()}_'
                                       f'{period.end.isoformat()}_{"-".join(by)}.csv"')
    buffer = io.StringIO()  # one write to the response (each response.write re-encodes: slow per row)
    writer = csv.writer(buffer)
    writer.writerow(["day", *by, *CSV_METRICS])
    for row in usage.per_day(period, by):
        writer.writerow([row["day"].isoformat(), *(cell(row[d]) for d in by), row["requests"], row["errors"],
                         row["prompt_tokens"], row["completion_tokens"], usd(row["cost"])])
    response.write(buffer.getvalue())
    return response


def shortcuts(today: dt.date, by: tuple[str, ...]) -> list[tuple[str, str]]:
    """(label, query) of a few periods: this month, last month, the last 7, 30 and 60 days."""
    month = usage.this_month(today)
    last_month = usage.this_month(month.start - dt.timedelta(days=1))
    periods = [("this month", month), ("last month", last_month)] + [
        (f"last {n} days", usage.Period(today - dt.timedelta(days=n - 1), today)) for n in (7, 30, 60)]
    return [(name, urlencode([("from", p.start.isoformat()), ("to", p.end.isoformat())] + [("by", d) for d in by]))
            for name, p in periods]


def usage_report(request: HttpRequest) -> HttpResponse:
    period, problems = usage.parse_period(request.GET)
    by = usage.parse_by(request.GET.getlist("by"))
    if request.GET.get("format") == "csv":
        return usage_csv(period, by)
    series = usage.daily_series(period)
    days = [row["day"] for row in series]
    query = [("from", period.start.isoformat()), ("to", period.end.isoformat())] + [("by", d) for d in by]
    context = {
        **admin.site.each_context(request),
        "title": "Usage report", "time_zone": settings.TIME_ZONE,
        "period": period, "problems": problems, "by": by, "dimensions": list(usage.DIMENSIONS),
        "totals": with_usd(usage.totals(period)), "rows": [with_usd(row) for row in usage.breakdown(period, by)],
        "charts": [(title, charts.bar_chart(title, days, [row[key] for row in series], **options))
                   for title, key, options in CHARTS],
        "csv_query": urlencode(query + [("format", "csv")]),
        "shortcuts": shortcuts(timezone.localdate(), by),
    }
    return TemplateResponse(request, "admin/usage_report.html", context)
