"""The admin of teams and API tokens: limits, a token's secret shown once, revoking."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from gateway.admin import spend
from gateway.conf import gateway_settings
from gateway.models import ANONYMOUS_DIGEST, ApiToken, Limited, ModelEntry, Team
from gateway.routing import patterns

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


@admin.display(description=spend.HELP, ordering=spend.SPEND)
def period_spend(obj: Limited) -> str:
    """The logged spend in the row's budget period (this month without a budget): gateway/admin/spend.py."""
    return spend.shown(obj)


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    form = LimitsForm
    list_display = ("name", "description", limits, period_spend, "created_at")
    search_fields = ("name",)
    fieldsets = ((None, {"fields": ("name", "description")}),
                 ("Limits", {"fields": Limited.LIMIT_FIELDS, "description": LIMITS_HELP}))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Team]:
        return spend.with_spend(super().get_queryset(request), "team_id")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    form = LimitsForm
    list_display = ("name", "prefix", "team", "active", limits, period_spend, "expires_at", "last_used_at",
                    "created_at")
    list_select_related = ("team",)
    list_filter = ("active", "team")
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "created_at", "last_used_at")
    fieldsets = ((None, {"fields": ("name", "team", "active", "expires_at", "allowed_models", "prefix",
                                    "created_at", "last_used_at")}),
                 ("Limits", {"fields": Limited.LIMIT_FIELDS, "description": LIMITS_HELP}))
    actions = ("revoke",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiToken]:
        return spend.with_spend(super().get_queryset(request), "token_id")

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
