"""The admin of the request log: read-only, filters that stay fast on a large log."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from gateway.models import RequestLog
from gateway.reports import log_list


class CostFilter(admin.SimpleListFilter):
    title = "cost"
    parameter_name = "cost"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> tuple[tuple[str, str], ...]:
        return (("known", "known"), ("unknown", "unknown (no price)"), ("estimated", "from estimated usage"))

    def queryset(self, request: HttpRequest, queryset: QuerySet[RequestLog]) -> QuerySet[RequestLog]:
        return {"known": queryset.filter(cost__isnull=False), "unknown": queryset.filter(cost__isnull=True),
                "estimated": queryset.filter(usage_estimated=True)}.get(self.value(), queryset)


@admin.register(RequestLog)
class RequestLogAdmin(admin.ModelAdmin):
    """Read-only: rows are written by the gateway, never edited."""

    # Narrow enough for a 1920 px screen: the request id is on the row's page (and searchable), the
    # token counts share a column.
    list_display = ("created_at", "endpoint", "token_name", "requested_model", "provider_account",
                    "status_code", "tokens", "cost_usd", "latency_ms", "ttft_ms", "session")
    # No field filter on a log column (its choices would be a DISTINCT over the whole log) and no
    # date_hierarchy (its year links are one too): see gateway/reports/log_list.py.
    list_filter = ("created_at", log_list.TeamFilter, log_list.TokenFilter, log_list.ModelFilter,
                   log_list.ProviderFilter, log_list.StatusFilter, log_list.EndpointFilter,
                   log_list.ProviderKindFilter, "stream", CostFilter)
    search_fields = ("request_id", "session_id", "requested_model", "token_name", "provider_account")
    list_select_related = False
    show_full_result_count = False  # no second COUNT of the unfiltered log
    paginator = log_list.BoundedCountPaginator
    # Rendering the rows is most of the page's time (its queries take ~20 ms on a million rows): 50 a
    # page, and no action checkboxes (rows are never deleted from the admin, see has_delete_permission).
    list_per_page = 50
    actions = None

    @admin.display(description="cost (USD)", ordering="cost")
    def cost_usd(self, obj: RequestLog) -> str:
        """USD; "unknown" when no price was known for the model (not $0); ≈ marks estimated usage."""
        if obj.cost is None:
            return "unknown"
        shown = f"${obj.cost.normalize():f}" if obj.cost else "$0"
        return f"≈{shown} (estimated usage)" if obj.usage_estimated else shown

    @admin.display(description="tokens (in + out)", ordering="total_tokens")
    def tokens(self, obj: RequestLog) -> str:
        return f"{obj.prompt_tokens:,} + {obj.completion_tokens:,}"

    @admin.display(description="session", ordering="session_id")
    def session(self, obj: RequestLog) -> str:
        """The session id, linking to all of that session's requests."""
        if not obj.session_id:
            return "-"
        return format_html('<a href="?session_id={}">{}</a>', obj.session_id, obj.session_id)

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        return lookup in ("session_id", "session_id__exact", "error_type", "error_type__exact") or super().lookup_allowed(lookup, value, request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Rows leave only by the retention command (``gateway_usage prune``), which keeps the daily
        aggregates and the spend counted against budgets right."""
        return False

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        return super().get_search_results(request, queryset, search_term.strip()[:128])
