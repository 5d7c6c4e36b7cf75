"""The Django admin: tokens (shown once), provider accounts (write-only keys), the model registry, logs."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html

from gateway.models import ApiToken, Deployment, Limited, ModelEntry, ProviderAccount, RequestLog, Team
from gateway.routing.provider_check import check_connection

LIMITS_HELP = ("Checked before every inference request, by all workers together. A team's limits cover all "
               "its tokens together; a token in a team obeys both. Empty: no limit.")


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

    def save_model(self, request: HttpRequest, obj: ApiToken, form: forms.ModelForm, change: bool) -> None:
        if not change:
            request._new_token_secret = obj.set_new_secret()  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None) -> HttpResponse:
        """Show the raw secret exactly once, on the page that follows creation."""
        secret = getattr(request, "_new_token_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        context = {**self.admin_site.each_context(request), "title": "API token created", "token": obj,
                   "secret": secret, "opts": self.opts}
        return TemplateResponse(request, "admin/gateway/apitoken/created.html", context)  # admin: never cached

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
                  "read_timeout", "active")

    def save(self, commit: bool = True) -> ProviderAccount:
        account = super().save(commit=False)
        if self.cleaned_data.get("api_key"):
            account.set_api_key(self.cleaned_data["api_key"])
        elif self.cleaned_data.get("clear_api_key"):
            account.set_api_key("")
        if commit:
            account.save()
        return account


@admin.register(ProviderAccount)
class ProviderAccountAdmin(admin.ModelAdmin):
    form = ProviderAccountForm
    list_display = ("name", "kind", "base_url", "active", "key_stored", "configured", "last_success_at",
                    "last_error_at", "last_error")
    list_filter = ("kind", "active")
    search_fields = ("name",)
    readonly_fields = ("key_stored", "last_success_at", "last_error_at", "last_error", "created_at")
    actions = ("check_connection_action",)

    @admin.display(boolean=True, description="key stored")
    def key_stored(self, obj: ProviderAccount) -> bool:
        return obj.has_api_key

    @admin.display(boolean=True)
    def configured(self, obj: ProviderAccount) -> bool:
        return obj.is_configured

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


@admin.register(ModelEntry)
class ModelEntryAdmin(admin.ModelAdmin):
    list_display = ("name", "is_pattern", "context_window", "input_price_per_million", "output_price_per_million",
                    "is_default", "active")
    list_filter = ("active", "is_default")
    search_fields = ("name", "description")
    inlines = (DeploymentInline,)

    @admin.display(boolean=True, description="pattern")
    def is_pattern(self, obj: ModelEntry) -> bool:
        return obj.is_pattern


@admin.register(RequestLog)
class RequestLogAdmin(admin.ModelAdmin):
    """Read-only: rows are written by the gateway, never edited."""

    list_display = ("created_at", "request_id", "endpoint", "token_name", "requested_model", "provider_account",
                    "status_code", "prompt_tokens", "completion_tokens", "cost", "latency_ms", "ttft_ms", "session")
    list_filter = ("status_code", "endpoint", "provider_kind", "stream", "error_type", "created_at")
    search_fields = ("request_id", "session_id", "requested_model", "token_name", "provider_account")
    date_hierarchy = "created_at"
    list_select_related = False
    show_full_result_count = False

    @admin.display(description="session", ordering="session_id")
    def session(self, obj: RequestLog) -> str:
        """The session id, linking to all of that session's requests."""
        if not obj.session_id:
            return "-"
        return format_html('<a href="?session_id={}">{}</a>', obj.session_id, obj.session_id)

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        return lookup in ("session_id", "session_id__exact") or super().lookup_allowed(lookup, value, request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        return super().get_search_results(request, queryset, search_term.strip()[:128])


admin.site.site_header = "AI gateway"
admin.site.site_title = "AI gateway admin"
admin.site.index_title = "Tokens, providers, models and request logs"
