"""Daily usage aggregates (``UsageDaily``): kept by the request-log writer, rebuilt from the raw log on demand.

The writer sums each batch it inserts in Python, by (day in ``settings.TIME_ZONE``, team, token, model,
provider account), and adds the sums with one upsert per distinct key, in the same transaction as the
raw rows: the aggregates cannot disagree with the rows they count, and the write path never reads the
raw log. ``rebuild`` recomputes chosen days from the raw log (``manage.py gateway_usage rebuild``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Max, Min, Q, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

KEY = ("day", "team_id", "token_id", "model", "provider")
SUMS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost", "unknown_cost_requests")
COLUMNS = ("day", "team_id", "team_name", "token_id", "token_name", "model", "provider", *SUMS)
REBUILD_CHUNK_DAYS = 31  # days per GROUP BY query


def day_of(when: dt.datetime) -> dt.date:
    """The day of ``when`` in settings.TIME_ZONE (a naive time is taken as already local)."""
    if timezone.is_aware(when):
        return timezone.localtime(when, timezone.get_default_timezone()).date()
    return when.date()


def day_start(day: dt.date) -> dt.datetime:
    """The first instant of ``day`` in settings.TIME_ZONE."""
    start = dt.datetime.combine(day, dt.time.min)
    return timezone.make_aware(start, timezone.get_default_timezone()) if timezone.is_aware(timezone.now()) else start


def aggregate(rows: Iterable[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    """The sums of log rows (as the writer inserts them) per key."""
    groups: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        key = (day_of(row["created_at"]), row.get("team_id") or 0,
               row.get("token_id") or 0, row.get("requested_model") or "", row.get("provider_account") or "")
        group = groups.get(key)
        if group is None:
            group = groups[key] = {"token_name": "", "requests": 0, "errors": 0, "prompt_tokens": 0,
                                   "completion_tokens": 0, "cost": Decimal(0), "unknown_cost_requests": 0}
        group["token_name"] = row.get("token_name") or group["token_name"]
        group["requests"] += 1
        group["errors"] += row["status_code"] >= 400
        group["prompt_tokens"] += row.get("prompt_tokens") or 0
        group["completion_tokens"] += row.get("completion_tokens") or 0
        cost = row.get("cost", 0)
        if cost is None:
            group["unknown_cost_requests"] += 1
        else:
            group["cost"] += cost
    return groups


def _upsert_statement() -> str:
    from gateway.models import UsageDaily

    qn = connection.ops.quote_name
    table = qn(UsageDaily._meta.db_table)
    added = ", ".join(f"{qn(c)} = {table}.{qn(c)} + excluded.{qn(c)}" for c in SUMS)
    # A name is refreshed by the latest rows, and kept when they have none (a deleted team or token).
    names = ", ".join(f"{qn(c)} = CASE WHEN excluded.{qn(c)} <> '' THEN excluded.{qn(c)} ELSE {table}.{qn(c)} END"
                      for c in ("team_name", "token_name"))
    return (f"INSERT INTO {table} ({', '.join(qn(c) for c in COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))}) "
            f"ON CONFLICT ({', '.join(qn(c) for c in KEY)}) DO UPDATE SET {added}, {names}")


def add(cursor: Any, groups: dict[tuple, dict[str, Any]]) -> None:
    """Add the sums to UsageDaily: one upsert per key, in one executemany (keys in order, so two writers
    adding to the same keys lock them in the same order). Called inside the caller's transaction."""
    if not groups:
        return
    from gateway.models import Team

    team_ids = {key[1] for key in groups if key[1]}
    teams = dict(Team.objects.filter(id__in=team_ids).values_list("id", "name")) if team_ids else {}
    ops = connection.ops
    params = []
    for key in sorted(groups):
        day, team_id, token_id, model, provider = key
        g = groups[key]
        params.append([ops.adapt_datefield_value(day), team_id, teams.get(team_id, ""), token_id, g["token_name"],
                       model, provider, g["requests"], g["errors"], g["prompt_tokens"], g["completion_tokens"],
                       ops.adapt_decimalfield_value(g["cost"], 18, 8), g["unknown_cost_requests"]])
    cursor.executemany(_upsert_statement(), params)


def raw_groups(first: dt.date, last: dt.date) -> dict[tuple, dict[str, Any]]:
    """The sums of the raw log's rows of the days ``first``..``last`` (inclusive), by one GROUP BY query."""
    from gateway.models import RequestLog

    rows = (
        RequestLog.objects.filter(created_at__gte=day_start(first), created_at__lt=day_start(last + dt.timedelta(days=1)))
        .annotate(d=TruncDate("created_at", tzinfo=timezone.get_default_timezone()))
        .values("d", "requested_model", "provider_account", team_key=Coalesce("team_id", Value(0)),
                token_key=Coalesce("token_id", Value(0)))
        .annotate(n=Count("id"), n_errors=Count("id", filter=Q(status_code__gte=400)),
                  prompt_sum=Sum("prompt_tokens"), completion_sum=Sum("completion_tokens"), cost_sum=Sum("cost"),
                  n_unknown=Count("id", filter=Q(cost__isnull=True)), name=Max("token_name"))
        .order_by()
    )
    return {
        (r["d"], r["team_key"], r["token_key"], r["requested_model"], r["provider_account"]): {
            "token_name": r["name"] or "", "requests": r["n"], "errors": r["n_errors"],
            "prompt_tokens": r["prompt_sum"] or 0, "completion_tokens": r["completion_sum"] or 0,
            "cost": r["cost_sum"] or Decimal(0), "unknown_cost_requests": r["n_unknown"],
        }
        for r in rows
    }


def raw_days() -> tuple[dt.date, dt.date] | None:
    """The first and last day of the raw log (None: it is empty)."""
    from gateway.models import RequestLog

    bounds = RequestLog.objects.order_by().aggregate(first=Min("created_at"), last=Max("created_at"))
    if bounds["first"] is None:
        return None
    return day_of(bounds["first"]), day_of(bounds["last"])


def rebuild(first: dt.date, last: dt.date) -> tuple[int, int]:
    """Recompute UsageDaily for the days ``first``..``last`` (inclusive) from the raw log, in one transaction:
    their aggregates are deleted, then summed again ``REBUILD_CHUNK_DAYS`` days per query. Returns (days, rows).
    On PostgreSQL the table is locked against the writers meanwhile (they wait, or keep their rows for retry)."""
    from gateway.models import UsageDaily

    rows = 0
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"LOCK TABLE {connection.ops.quote_name(UsageDaily._meta.db_table)} "
                           "IN SHARE ROW EXCLUSIVE MODE")
        UsageDaily.objects.filter(day__gte=first, day__lte=last).delete()
        start = first
        while start <= last:
            end = min(start + dt.timedelta(days=REBUILD_CHUNK_DAYS - 1), last)
            groups = raw_groups(start, end)
            add(cursor, groups)
            rows += len(groups)
            start = end + dt.timedelta(days=1)
    return (last - first).days + 1, rows
