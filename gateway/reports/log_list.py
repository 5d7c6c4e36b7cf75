"""The request log's list page at scale: filters whose choices come from small tables (never a DISTINCT
over the log), and a paginator that never counts the whole log.

Django's field filters (``list_filter = ("status_code", ...)``) list their choices with
``SELECT DISTINCT column FROM log``: a full scan of the log on every page load. Each filter here
takes its choices from the registry (teams, tokens, providers, models), from the daily aggregate
(recent models and providers), or from a fixed list, and filters on an indexed column.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import cached_property

from gateway.models import ApiToken, ProviderAccount, RequestLog, Team, UsageDaily

MAX_TOKEN_CHOICES = 300
RECENT_DAYS = 90  # models and providers listed: those of the registry and of the daily usage this recent


class LookupFilter(admin.SimpleListFilter):
    """``?<parameter_name>=value`` filters ``field`` on value (choices from ``choices()``)."""

    field = ""

    def choices_for(self, request: HttpRequest) -> list[tuple[Any, str]]:
        raise NotImplementedError

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[Any, str]]:
        """The choices, and the value asked for when it is none of them (a deleted team, a model no
        longer listed): the admin applies only filters that have choices."""
        choices = self.choices_for(request)
        value = self.value()
        if value and value not in {str(key) for key, _ in choices}:
            choices.append((value, value))
        return choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[RequestLog]) -> QuerySet[RequestLog]:
        value = self.value()
        return queryset if value in (None, "") else queryset.filter(**{self.field: value})


class TeamFilter(LookupFilter):
    title, parameter_name, field = "team", "team", "team_id"

    def choices_for(self, request: HttpRequest) -> list[tuple[Any, str]]:
        return [(str(pk), name) for pk, name in Team.objects.order_by("name").values_list("pk", "name")]


class TokenFilter(LookupFilter):
    title, parameter_name, field = "token", "token", "token_id"

    def choices_for(self, request: HttpRequest) -> list[tuple[Any, str]]:
        tokens = ApiToken.objects.order_by("name", "pk").values_list("pk", "name", "prefix")[:MAX_TOKEN_CHOICES]
        return [(str(pk), f"{name} ({prefix}…)" if prefix else f"{name} (no token)") for pk, name, prefix in tokens]


def recent_usage_values(column: str) -> set[str]:
    """The distinct values of a UsageDaily column over the last RECENT_DAYS days (a small table, and
    its unique index starts with the day)."""
    since = timezone.localdate() - dt.timedelta(days=RECENT_DAYS)
    return set(UsageDaily.objects.filter(day__gte=since).exclude(**{column: ""})
               .values_list(column, flat=True).distinct())


class ModelFilter(LookupFilter):
    title, parameter_name, field = "model", "model", "requested_model"

    def choices_for(self, request: HttpRequest) -> list[tuple[Any, str]]:
        from gateway.models import ModelEntry

        names = {n for n in ModelEntry.objects.values_list("name", flat=True) if "*" not in n}
        return [(n, n) for n in sorted(names | recent_usage_values("model"))]


class ProviderFilter(LookupFilter):
    title, parameter_name, field = "provider", "provider", "provider_account"

    def choices_for(self, request: HttpRequest) -> list[tuple[Any, str]]:
        names = set(ProviderAccount.objects.values_list("name", flat=True)) | recent_usage_values("provider")
        return [(n, n) for n in sorted(names)]


class StatusFilter(admin.SimpleListFilter):
    """Status classes and the codes the gateway answers most (an index on (status_code, created_at))."""

    title, parameter_name = "status", "status"
    CLASSES = {"2xx": (200, 299), "4xx": (400, 499), "5xx": (500, 599)}
    CODES = (200, 400, 401, 403, 404, 408, 413, 429, 500, 502, 503, 504)

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(c, c) for c in self.CLASSES] + [(str(code), str(code)) for code in self.CODES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[RequestLog]) -> QuerySet[RequestLog]:
        value = self.value() or ""
        if value in self.CLASSES:
            return queryset.filter(status_code__range=self.CLASSES[value])
        return queryset.filter(status_code=int(value)) if value.isdigit() else queryset


class EndpointFilter(admin.SimpleListFilter):
    title, parameter_name = "endpoint", "endpoint"
    ENDPOINTS = ("chat.completions", "completions", "embeddings")

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(e, e) for e in self.ENDPOINTS]

    def queryset(self, request: HttpRequest, queryset: QuerySet[RequestLog]) -> QuerySet[RequestLog]:
        return queryset.filter(endpoint=self.value()) if self.value() else queryset


class ProviderKindFilter(admin.SimpleListFilter):
    title, parameter_name = "provider kind", "provider_kind"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return list(ProviderAccount._meta.get_field("kind").choices or [])

    def queryset(self, request: HttpRequest, queryset: QuerySet[RequestLog]) -> QuerySet[RequestLog]:
        return queryset.filter(provider_kind=self.value()) if self.value() else queryset


class BoundedCountPaginator(Paginator):
    """Counts at most CAP rows (``SELECT COUNT(*) FROM (SELECT id ... LIMIT CAP)``), so a page never
    costs a count of the whole log; past CAP pages are not offered. Unfiltered on Postgres, the
    planner's row estimate (``pg_class.reltuples``, kept by autovacuum/ANALYZE) is used instead
    when it is above CAP: the last pages are then approximate (a page past the end shows an error)."""

    CAP = 10_000
    bound = ""  # how the count is shown: "estimate" (about N), "cap" (N or more), "" (exact)

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not queryset.query.where:
            estimate = table_estimate(queryset)
            if estimate is not None and estimate > self.CAP:
                self.bound = "estimate"
                return estimate
        counted = queryset.order_by().values("pk")[: self.CAP].count()
        self.bound = "cap" if counted >= self.CAP else ""
        return counted


def table_estimate(queryset: QuerySet) -> int | None:
    """Postgres's estimate of the table's row count, or None (other databases, never analysed)."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                       [queryset.model._meta.db_table])
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] and row[0] > 0 else None
