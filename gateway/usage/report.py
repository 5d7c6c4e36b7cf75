"""The usage report read from UsageDaily (never the raw log): sums per chosen columns over a range of days."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db.models import Max, Sum

DIMENSIONS = ("day", "team", "token", "model", "provider")
COLUMNS = (*DIMENSIONS, "requests", "errors", "prompt_tokens", "completion_tokens", "cost_usd")
_GROUP = {"day": "day", "team": "team_id", "token": "token_id", "model": "model", "provider": "provider"}
_CENT = Decimal("0.00000001")


def usage_report(first: dt.date, last: dt.date, by: tuple[str, ...] = DIMENSIONS) -> list[dict[str, Any]]:
    """One dict per group of the days ``first``..``last`` (inclusive), keys in ``COLUMNS`` order without
    the dimensions not in ``by``; teams and tokens by name (``#id`` when the name was never known), cost
    as text with 8 decimals. Sorted by the dimensions, in ``DIMENSIONS`` order."""
    from gateway.models import UsageDaily

    unknown = sorted(set(by) - set(DIMENSIONS))
    if unknown:
        raise ValueError(f"unknown column(s) {', '.join(unknown)}: choose among {', '.join(DIMENSIONS)}")
    dims = [d for d in DIMENSIONS if d in by]
    fields = [_GROUP[d] for d in dims]
    rows = (UsageDaily.objects.filter(day__gte=first, day__lte=last).values(*fields)
            .annotate(team_label=Max("team_name"), token_label=Max("token_name"), requests_sum=Sum("requests"),
                      errors_sum=Sum("errors"), prompt_sum=Sum("prompt_tokens"),
                      completion_sum=Sum("completion_tokens"), cost_sum=Sum("cost"))
            .order_by(*fields))
    report = []
    for r in rows:
        out: dict[str, Any] = {}
        for d in dims:
            if d == "day":
                out["day"] = r["day"].isoformat()
            elif d in ("team", "token"):
                ident = r[_GROUP[d]]
                out[d] = r[f"{d}_label"] or (f"#{ident}" if ident else "")
            else:
                out[d] = r[_GROUP[d]]
        out.update(requests=r["requests_sum"], errors=r["errors_sum"], prompt_tokens=r["prompt_sum"],
                   completion_tokens=r["completion_sum"],
                   cost_usd=format(Decimal(r["cost_sum"] or 0).quantize(_CENT), "f"))
        report.append(out)
    return report
