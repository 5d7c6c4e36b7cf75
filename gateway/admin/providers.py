"""The admin of provider accounts: write-only keys, their health and cooldowns, the connection check."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from gateway import provider_keys
from gateway.admin import provider_options
from gateway.models import ProviderAccount
from gateway.routing.cooldowns import cooldowns
from gateway.routing.provider_check import check_connection
from providers.registry import default_base_url, kind_choices


class ProviderAccountForm(forms.ModelForm):
    """The API key is write-only: typed in, encrypted, never rendered back."""

    api_key = forms.CharField(
        required=False, strip=True, widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only. Leave empty to keep the stored key.",
    )
    clear_api_key = forms.BooleanField(required=False, help_text="Remove the stored key.")

    class Meta:
        model = ProviderAccount
        fields = ("name", "kind", "base_url", "api_key", "clear_api_key", "connect_timeout",
                  "first_byte_timeout", "read_timeout", "cooldown_failures", "cooldown_window_seconds", "cooldown_seconds", "active")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = self.instance.options
        self.stored_options: dict[str, Any] = dict(stored) if isinstance(stored, dict) else {}
        for name, value in provider_options.initial(self.stored_options).items():
            self.initial.setdefault(name, value)
        if "base_url" in self.fields:
            defaults = "; ".join(f"{kind}: {default_base_url(kind) or 'none, required'}" for kind, _ in kind_choices())
            self.fields["base_url"].help_text = (
                "The part of the provider's URL before the endpoint path (the gateway appends e.g. "
                f"/chat/completions). Empty: the kind's default ({defaults}).")

    def clean(self) -> dict[str, Any]:
        """The selected kind's options (and the other ones typed as JSON) become the account's options;
        the model's ``clean`` then checks the required ones."""
        cleaned = super().clean()
        if cleaned.get("kind"):
            self.instance.options = provider_options.read(self, cleaned["kind"], self.stored_options)
        return cleaned

    def _update_errors(self, errors: ValidationError) -> None:
        """The model's errors about one option go to that option's field (not a field of this form's
        model fields, where Django would refuse them)."""
        found = getattr(errors, "error_dict", {})
        if "options" in found:
            kind = self.cleaned_data.get("kind", "")
            for error in found.pop("options"):
                target = provider_options.field_name(kind, (error.params or {}).get("option", ""))
                self.add_error(target if target in self.fields else provider_options.OTHER, error)
            if not found:
                return
        super()._update_errors(errors)

    def save(self, commit: bool = True) -> ProviderAccount:
        account = super().save(commit=False)
        if self.cleaned_data.get("api_key"):
            account.set_api_key(self.cleaned_data["api_key"])
        elif self.cleaned_data.get("clear_api_key"):
            account.set_api_key("")
        if commit:
            account.save()
        return account


# Declared, not added in __init__: the admin's fieldsets may name only fields the form class declares.
ProviderAccountForm.base_fields.update(provider_options.option_fields())
ProviderAccountForm.declared_fields.update(provider_options.option_fields())
OPTION_FIELDS = tuple(name for name in ProviderAccountForm.declared_fields if name.startswith(provider_options.PREFIX))
OPTIONS_HELP = ("What the selected kind reads besides its key and URL (with JavaScript off, every kind's options "
                "are listed, each labelled with its kind; only the selected kind's are saved).")

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
    fieldsets = (
        (None, {"fields": ("name", "kind", "base_url", "api_key", "clear_api_key", "active")}),
        ("Options", {"fields": OPTION_FIELDS, "description": OPTIONS_HELP, "classes": ("provider-options",)}),
        ("Other options", {"fields": (provider_options.OTHER,), "classes": ("collapse",)}),
        ("Timeouts and cooldowns", {"fields": ("connect_timeout", "first_byte_timeout", "read_timeout",
                                               "cooldown_failures", "cooldown_window_seconds", "cooldown_seconds")}),
        ("Health", {"fields": readonly_fields}),
    )
    actions = ("check_connection_action",)

    class Media:
        js = ("gateway/admin/provider_options.js",)  # shows only the selected kind's options

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
