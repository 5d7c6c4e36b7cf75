"""Admin login throttling: failed logins are counted per username and per client address.

After ``ADMIN_LOGIN_MAX_FAILURES_PER_USER`` failures for one username, or
``ADMIN_LOGIN_MAX_FAILURES_PER_IP`` from one address, within ``ADMIN_LOGIN_WINDOW_SECONDS`` of the
first of them, the login form refuses every further attempt for that username or address — the
right password included, and without checking it — until the window has passed. Counters live in
Django's cache: Redis when ``REDIS_URL`` is set, so that they hold across workers and instances
(without it each worker process counts on its own).

The client address is the connection's (``REMOTE_ADDR``); behind a proxy, uvicorn puts the client's
there from ``X-Forwarded-For`` when the proxy's address is in ``FORWARDED_ALLOW_IPS``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from gateway.conf import gateway_settings

logger = logging.getLogger(__name__)

PREFIX = "gateway:admin-login"


def _key(scope: str, value: str) -> str:
    return f"{PREFIX}:{scope}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"


def _scopes(username: str, address: str) -> list[tuple[str, int]]:
    """(counter key, limit) for the username and the address; a limit of 0 switches that one off."""
    scopes = []
    if username and gateway_settings.ADMIN_LOGIN_MAX_FAILURES_PER_USER:
        scopes.append((_key("user", username.strip().casefold()), gateway_settings.ADMIN_LOGIN_MAX_FAILURES_PER_USER))
    if address and gateway_settings.ADMIN_LOGIN_MAX_FAILURES_PER_IP:
        scopes.append((_key("ip", address), gateway_settings.ADMIN_LOGIN_MAX_FAILURES_PER_IP))
    return scopes


def seconds_refused(username: str, address: str) -> float:
    """How long attempts for this username or from this address stay refused (0: not refused)."""
    waits = [0.0]
    for key, limit in _scopes(username, address):
        found = cache.get_many([key, f"{key}:since"])
        if found.get(key, 0) >= limit:
            started = found.get(f"{key}:since", time.time())
            waits.append(max(1.0, started + gateway_settings.ADMIN_LOGIN_WINDOW_SECONDS - time.time()))
    return max(waits)


def record_failure(username: str, address: str) -> None:
    window = gateway_settings.ADMIN_LOGIN_WINDOW_SECONDS
    for key, limit in _scopes(username, address):
        cache.add(f"{key}:since", time.time(), window)
        if cache.add(key, 1, window):
            failures = 1
        else:
            try:
                failures = cache.incr(key)
            except ValueError:  # expired between add() and incr()
                cache.add(key, 1, window)
                failures = 1
        if failures == limit:
            logger.warning("admin login: %d failed attempts for %s within %d s; further attempts refused until then",
                           failures, f"username {username[:150]!r}" if ":user:" in key else f"address {address}",
                           window)


def record_success(username: str) -> None:
    """A successful login clears its username's count (not its address's: one account's password
    must not buy more guesses at the others)."""
    for key, _ in _scopes(username, ""):
        cache.delete_many([key, f"{key}:since"])


def client_address(request: HttpRequest | None) -> str:
    return (request.META.get("REMOTE_ADDR") or "") if request is not None else ""


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin's login form, refusing attempts while their username or address is throttled."""

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "too_many_attempts": "Too many failed login attempts for this account or from this address. "
                             "Try again in %(minutes)d minute(s).",
    }

    def clean(self) -> dict:
        username = self.cleaned_data.get("username") or ""
        address = client_address(self.request)
        wait = seconds_refused(username, address)
        if wait:
            raise ValidationError(self.error_messages["too_many_attempts"], code="too_many_attempts",
                                  params={"minutes": math.ceil(wait / 60)})
        try:
            cleaned = super().clean()
        except ValidationError:
            record_failure(username, address)
            raise
        if self.user_cache is not None:
            record_success(username)
        return cleaned
