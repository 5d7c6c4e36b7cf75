"""The admin index's dashboard: today's and this month's usage, the top teams, tokens and models,
and the provider accounts' health. Read from the daily aggregates and the small account table, so
the page costs a handful of indexed queries whatever the size of the request log."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from gateway.models import ProviderAccount
from gateway.reports import usage
from gateway.routing.cooldowns import cooldowns

TOP = 5


def _period_totals(period: usage.Period) -> dict[str, Any]:
    found = usage.totals(period)
    return found | {"tokens": found["prompt_tokens"] + found["completion_tokens"]}


def accounts() -> list[dict[str, Any]]:
    """Each provider account: its kind, whether it can be called, and its last success and error."""
    rows = []
    for account in ProviderAccount.objects.prefetch_related("deployments"):
        failing = account.last_error_at is not None and (
            account.last_success_at is None or account.last_error_at > account.last_success_at)
        state = ("inactive" if not account.active else "not configured" if not account.is_configured
                 else "failing" if failing else "ok" if account.last_success_at else "not used yet")
        rows.append({"account": account, "state": state,
                     "deployments": sum(1 for d in account.deployments.all() if d.active)})
    return rows


def context(today: dt.date | None = None) -> dict[str, Any]:
    today = today or timezone.localdate()
    month = usage.this_month(today)
    return {
        "today": _period_totals(usage.Period(today, today)),
        "month": _period_totals(month),
        "month_period": month,
        "top": [(title, usage.breakdown(month, (dimension,))[:TOP])
                for title, dimension in (("Teams", "team"), ("Tokens", "token"), ("Models", "model"))],
        "accounts": accounts(),
        "cooldowns": [c.as_dict() for c in cooldowns.listing_sync()],
    }
