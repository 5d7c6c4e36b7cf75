"""The Django admin: tokens (shown once), provider accounts (write-only keys), the model registry, logs."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from gateway import provider_keys, validators
from gateway.access.admin_login import ThrottledAdminAuthenticationForm
from gateway.conf import gateway_settings
from gateway.models import (
    ANONYMOUS_DIGEST,
    ApiToken,
    Deployment,
    Limited,
    ModelEntry,
    ProviderAccount,
    RequestLog,
    Team,
)
from gateway.reports import dashboard, log_list
from gateway.reports import views as report_views
from gateway.routing import patterns
from gateway.routing.cooldowns import cooldowns
from gateway.routing.provider_check import check_connection
from providers.registry import default_base_url, kind_choices

LIMITS_HELP = ("Checked before every inference request, by all workers together. A team's limits cover all "
               "its tokens together; a token in a team obeys both. Empty: no limit.")
ANONYMOUS_HELP = ("Requests that carry no token are served as this identity when GATEWAY_ANONYMOUS is on "
                  "(it is {state}): anyone who can reach the gateway can use these models within these limits. "
                  "Untick active to refuse them (401) without a restart.")
PER_ADDRESS_HELP = ("Each client address on its own (the connection's, or the client's from a proxy in "
                    "FORWARDED_ALLOW_IPS; an IPv6 address by its /64 network), within the limits above.")


def _secret_key(token_id: int) -> str:
    """Where a just-created token's secret waits in the session for the page that shows it."""
    return f"gateway-new-token-{token_id}"


def unserved_models(allowed: list[str]) -> list[str]:
    """The allowed-model names and patterns that no active registry entry serves: a name no entry (or
    entry pattern) matches, a pattern that matches no entry and overlaps no entry pattern."""
    names = list(ModelEntry.objects.filter(active=True).values_list("name", flat=True))

    def served(allowed_name: str) -> bool:
        return any(patterns.matches(allowed_name, name) or patterns.matches(name, allowed_name)
                   or ("*" in allowed_name and "*" in name and _overlap(allowed_name, name)) for name in names)

    return [name for name in allowed if not served(name)]


def _overlap(one: str, other: str) -> bool:
    """Whether two patterns can match a common name (compared by their literal starts)."""
    a, b = one.split("*", 1)[0], other.split("*", 1)[0]
    return a.startswith(b) or b.startswith(a)


@admin.display(description="limits")
def limits(obj: Limited) -> str:
    return obj.limits_summary()


class LimitsForm(forms.ModelForm):
    """A team's or token's form: a form sent without a budget period keeps the default (total)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "budget_period" in self.fields:
            self.fields["budget_period"].required = False

    def clean_budget_period(self) -> str:
        return self.cleaned_data.get("budget_period") or "total"


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    form = LimitsForm
    list_display = ("name", "description", limits, "created_at")
    search_fields = ("name",)
    fieldsets = ((None, {"fields": ("name", "description")}),
                 ("Limits", {"fields": Limited.LIMIT_FIELDS, "description": LIMITS_HELP}))


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    form = LimitsForm
    list_display = ("name", "prefix", "team", "active", limits, "expires_at", "last_used_at", "created_at")
    list_filter = ("active", "team")
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "created_at", "last_used_at")
    fieldsets = ((None, {"fields": ("name", "team", "active", "expires_at", "allowed_models", "prefix",
                                    "created_at", "last_used_at")}),
                 ("Limits", {"fields": Limited.LIMIT_FIELDS, "description": LIMITS_HELP}))
    actions = ("revoke",)

    def get_fieldsets(self, request: HttpRequest, obj: ApiToken | None = None) -> Any:
        if obj is None or not obj.is_anonymous:
            return self.fieldsets
        state = "on" if gateway_settings.ANONYMOUS else "off"
        return ((None, {"fields": ("name", "active", "allowed_models", "created_at", "last_used_at"),
                        "description": ANONYMOUS_HELP.format(state=state)}),
                ("Limits", {"fields": Limited.LIMIT_FIELDS, "description": LIMITS_HELP}),
                ("Limits per client address", {"fields": ApiToken.PER_ADDRESS_FIELDS, "description": PER_ADDRESS_HELP}))

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> Any:
        if obj is not None and obj.is_anonymous:  # (its name is what reports show for requests without a token)
            return (*self.readonly_fields, "name")
        return self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        # The anonymous identity is switched off (active), not deleted: a new one would have no limits.
        return super().has_delete_permission(request, obj) and not (obj is not None and obj.is_anonymous)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        super().delete_queryset(request, queryset.exclude(digest=ANONYMOUS_DIGEST))

    def save_model(self, request: HttpRequest, obj: ApiToken, form: forms.ModelForm, change: bool) -> None:
        if not change:
            request._new_token_secret = obj.set_new_secret()  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)
        if unserved := unserved_models(obj.allowed_model_list()):
            self.message_user(request, f"No active model in the registry serves {', '.join(unserved)}: this token "
                              "cannot use it until one does (saved anyway; check the spelling).", messages.WARNING)

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None) -> HttpResponse:
        """Redirect to the page that shows the raw secret (reloading a POST's answer would create a
        second token). The secret waits in the admin's server-side session until that page takes it."""
        secret = getattr(request, "_new_token_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        request.session[_secret_key(obj.pk)] = secret
        return redirect("admin:gateway_apitoken_created", obj.pk)

    def get_urls(self) -> list[URLPattern]:
        created = path("<int:object_id>/created/", self.admin_site.admin_view(self.created_view),
                       name="gateway_apitoken_created")
        return [created, *super().get_urls()]

    def created_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """The new token's secret, exactly once (admin_view: staff only, never cached); afterwards the
        page says it was shown and is not stored."""
        token = get_object_or_404(ApiToken, pk=object_id)
        secret = request.session.pop(_secret_key(token.pk), None)
        if secret is None:
            self.message_user(request, f"The secret of token '{token.name}' was shown once when it was created and "
                              "is not stored (only its digest). Create a new token if it was lost.", messages.WARNING)
            return redirect("admin:gateway_apitoken_change", token.pk)
        base = request.build_absolute_uri("/v1")
        context = {**self.admin_site.each_context(request), "title": "API token created", "token": token,
                   "secret": secret, "opts": self.opts, "base_url": base}
        return TemplateResponse(request, "admin/gateway/apitoken/created.html", context)

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = 0
        for token in queryset.filter(active=True):
            token.active = False
            token.save(update_fields=["active"])
            count += 1
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)


class ProviderAccountForm(forms.ModelForm):
    """The API key is write-only: typed in, encrypted, never rendered back."""

    api_key = forms.CharField(
        required=False, strip=True, widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only. Leave empty to keep the stored key.",
    )
    clear_api_key = forms.BooleanField(required=False, help_text="Remove the stored key.")

    class Meta:
        model = ProviderAccount
        fields = ("name", "kind", "base_url", "api_key", "clear_api_key", "options", "connect_timeout",
                  "first_byte_timeout", "read_timeout", "cooldown_failures", "cooldown_window_seconds", "cooldown_seconds", "active")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "base_url" in self.fields:
            defaults = "; ".join(f"{kind}: {default_base_url(kind) or 'none, required'}" for kind, _ in kind_choices())
            self.fields["base_url"].help_text = (
                "The part of the provider's URL before the endpoint path (the gateway appends e.g. "
                f"/chat/completions). Empty: the kind's default ({defaults}).")

    def save(self, commit: bool = True) -> ProviderAccount:
        account = super().save(commit=False)
        if self.cleaned_data.get("api_key"):
            account.set_api_key(self.cleaned_data["api_key"])
        elif self.cleaned_data.get("clear_api_key"):
            account.set_api_key("")
        if commit:
            account.save()
        return account


_page = threading.local()  # the cooldowns read once for the page being rendered (a list shows many accounts)


def _read_cooldowns() -> None:
    try:
        _page.cooldowns = cooldowns.listing_sync()
    except Exception:
        _page.cooldowns = None


UNDECRYPTABLE_ADVICE = ("cannot be decrypted with the configured GATEWAY_ENCRYPTION_KEYS: requests to it fail "
                        "(503, provider_key_undecryptable). Add the key it was encrypted with to "
                        "GATEWAY_ENCRYPTION_KEYS (then run manage.py gateway_rekey), or enter the API key again.")


@admin.register(ProviderAccount)
class ProviderAccountAdmin(admin.ModelAdmin):
    form = ProviderAccountForm
    list_display = ("name", "kind", "base_url", "active", "key", "configured", "last_success_at",
                    "last_error_at", "last_error", "in_cooldown")
    list_filter = ("kind", "active")
    search_fields = ("name",)
    readonly_fields = ("key", "last_success_at", "last_error_at", "last_error", "in_cooldown", "created_at")
    actions = ("check_connection_action",)

    @admin.display(description="stored key")
    def key(self, obj: ProviderAccount) -> str:
        """The stored key's state (never the key): ok, missing, or undecryptable (in red)."""
        status = obj.key_status
        if status == provider_keys.UNDECRYPTABLE:
            return format_html('<strong style="color: {}">{}</strong>', "#ba2121", status)
        return "stored" if status == provider_keys.OK else "none"

    @admin.display(boolean=True)
    def configured(self, obj: ProviderAccount) -> bool:
        return obj.is_configured

    @admin.display(description="in cooldown")
    def in_cooldown(self, obj: ProviderAccount) -> str:
        """Its deployments in cooldown now (upstream model, until when, why): tried only when nothing else is left."""
        if obj.pk is None:
            return "-"
        cooling = getattr(_page, "cooldowns", None)
        if cooling is None:
            return "unknown (Redis did not answer)"
        found = [c for c in cooling if c.provider == obj.name]
        rows = [(c.model, timezone.localtime(datetime.fromtimestamp(c.until, UTC)).strftime("%Y-%m-%d %H:%M:%S"),
                 c.reason) for c in found]
        return format_html_join("", "<div>{} until {}: {}</div>", rows) if rows else "-"

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        _read_cooldowns()
        unreadable = [p.name for p in ProviderAccount.objects.exclude(api_key_encrypted="")
                      if p.key_status == provider_keys.UNDECRYPTABLE]
        if unreadable and request.method == "GET":
            names = ", ".join(unreadable)
            self.message_user(request, f"The stored API key of {names} {UNDECRYPTABLE_ADVICE}", messages.ERROR)
        return super().changelist_view(request, extra_context)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict | None = None) -> HttpResponse:
        _read_cooldowns()
        account = self.get_object(request, object_id)
        if account is not None and request.method == "GET" and account.key_status == provider_keys.UNDECRYPTABLE:
            self.message_user(request, f"This account's stored API key {UNDECRYPTABLE_ADVICE}", messages.ERROR)
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.action(description="Check connection (one cheap call to the provider)")
    def check_connection_action(self, request: HttpRequest, queryset: QuerySet[ProviderAccount]) -> None:
        for account in queryset:
            ok, message = check_connection(account)
            self.message_user(request, f"{account.name}: {message}", messages.SUCCESS if ok else messages.ERROR)


class DeploymentInline(admin.TabularInline):
    model = Deployment
    extra = 1
    fields = ("provider", "upstream_model", "weight", "priority", "active")
    autocomplete_fields = ("provider",)


class PriceSourceFilter(admin.SimpleListFilter):
    """Models by where their prices come from (for their first deployment's upstream model)."""

    title = "prices"
    parameter_name = "prices"
    STATES = (("entry", "set here"), ("price_list", "from the price list"), ("mixed", "set here + price list"),
              ("unknown", "unknown"))

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> tuple[tuple[str, str], ...]:
        return self.STATES

    def queryset(self, request: HttpRequest, queryset: QuerySet[ModelEntry]) -> QuerySet[ModelEntry]:
        if not self.value():
            return queryset
        ids = [m.id for m in queryset.prefetch_related("deployments")
               if m.pricing().state(needs_output=not m.embeddings) == self.value()]
        return queryset.filter(id__in=ids)


class ModelEntryForm(forms.ModelForm):
    def clean_fallbacks(self) -> str:
        """Exact names of other existing models; stored one per line."""
        names = validators.split_names(self.cleaned_data.get("fallbacks", ""))
        known = set(ModelEntry.objects.exclude(name__contains="*").values_list("name", flat=True))
        problems = validators.fallback_problems(self.cleaned_data.get("name") or self.instance.name, names, known)
        if problems:
            raise forms.ValidationError(problems)
        return "\n".join(names)


@admin.register(ModelEntry)
class ModelEntryAdmin(admin.ModelAdmin):
    form = ModelEntryForm
    list_display = ("name", "is_pattern", "context_window", "input_price", "cached_input_price", "output_price",
                    "prices", "is_default", "active")
    list_filter = ("active", "is_default", PriceSourceFilter)
    search_fields = ("name", "description")
    readonly_fields = ("effective_prices",)
    inlines = (DeploymentInline,)
    # How a price that is not the entry's own is shown (USD per million tokens).
    PRICE_MARKS = {"price_list": "{} (list)", "input_price": "{} (= input)"}

    def get_queryset(self, request: HttpRequest) -> QuerySet[ModelEntry]:
        return super().get_queryset(request).prefetch_related("deployments")

    @admin.display(boolean=True, description="pattern")
    def is_pattern(self, obj: ModelEntry) -> bool:
        return obj.is_pattern

    def _price(self, obj: ModelEntry, index: int) -> str:
        pricing = obj.pricing()
        value, source = (pricing.input, pricing.cached_input, pricing.output)[index], pricing.sources[index]
        if source == "price_list_per_model":
            return "per model (list)"
        if value is None:
            return "-" if index == 2 and obj.embeddings else "unknown"
        return self.PRICE_MARKS.get(source, "{}").format(f"{value.normalize():f}")

    @admin.display(description="input $/M")
    def input_price(self, obj: ModelEntry) -> str:
        return self._price(obj, 0)

    @admin.display(description="cached input $/M")
    def cached_input_price(self, obj: ModelEntry) -> str:
        return self._price(obj, 1)

    @admin.display(description="output $/M")
    def output_price(self, obj: ModelEntry) -> str:
        return self._price(obj, 2)

    @admin.display(description="prices")
    def prices(self, obj: ModelEntry) -> str:
        return obj.pricing().summary(needs_output=not obj.embeddings)

    @admin.display(description="effective prices")
    def effective_prices(self, obj: ModelEntry) -> str:
        """Per active deployment: the prices its requests are charged at (USD per million tokens)."""
        if obj.pk is None:
            return "Shown once the model is saved."
        rows = [(f"{dep.provider.name}: {dep.upstream_model or '(requested name)'}", obj.pricing(dep).describe())
                for dep in obj.active_deployments()]
        return format_html_join("", "<div>{}: {}</div>", rows) if rows else "No active deployment."


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


admin.site.site_header = "AI gateway"
admin.site.site_title = "AI gateway admin"
admin.site.index_title = "Tokens, providers, models and request logs"
_admin_urls = admin.site.get_urls


def _with_reports() -> list[URLPattern]:
    """The admin's URLs and /admin/usage/ ("admin:usage"), staff only: admin_view sends anyone else to
    the login page and marks the page never_cache."""
    return [path("usage/", admin.site.admin_view(report_views.usage_report), name="usage"), *_admin_urls()]


admin.site.get_urls = _with_reports  # read when proxy_site/urls.py includes admin.site.urls
_admin_index = admin.site.index


def _index_with_dashboard(request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
    """The admin index opens on the dashboard (templates/admin/index.html): usage today and this month,
    the top teams, tokens and models, the provider accounts' health."""
    found = dashboard.context()
    found["periods"] = [("Today", report_views.with_usd(found["today"])),
                        ("This month", report_views.with_usd(found["month"]))]
    found["top"] = [(title, [report_views.with_usd(row) | {"tokens": row["prompt_tokens"] + row["completion_tokens"]}
                             for row in rows]) for title, rows in found["top"]]
    return _admin_index(request, {**(extra_context or {}), "dashboard": found})


admin.site.index = _index_with_dashboard
admin.site.login_form = ThrottledAdminAuthenticationForm  # failed logins throttled per username and address
