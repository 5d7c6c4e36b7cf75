"""The Django admin: tokens (shown once), provider accounts (write-only keys), the model registry, logs.

One module per concept (``tokens``, ``providers``, ``registry``, ``logs``), each registering its
ModelAdmins when imported; here the site itself: its titles, the usage report's URL, the dashboard
on the index page and the throttled login form.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path

from gateway.access.admin_login import ThrottledAdminAuthenticationForm
from gateway.admin import logs, providers, registry, tokens
from gateway.admin.logs import RequestLogAdmin
from gateway.admin.providers import ProviderAccountAdmin, ProviderAccountForm
from gateway.admin.registry import ModelEntryAdmin
from gateway.admin.tokens import ApiTokenAdmin, LimitsForm, TeamAdmin, unserved_models
from gateway.reports import dashboard
from gateway.reports import views as report_views

__all__ = ["ApiTokenAdmin", "LimitsForm", "ModelEntryAdmin", "ProviderAccountAdmin", "ProviderAccountForm",
           "RequestLogAdmin", "TeamAdmin", "logs", "providers", "registry", "tokens", "unserved_models"]

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
