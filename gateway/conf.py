"""The gateway's settings object: ``gateway_settings.CACHE_SECONDS`` and so on.

As DRF's ``api_settings``: the project's ``settings.GATEWAY`` dict holds only what an operator
changed (``proxy_site/settings.py`` fills it from ``GATEWAY_*`` environment variables); every
other name falls back to ``DEFAULTS`` here. An unknown name in ``settings.GATEWAY`` or asked of
this object is an error, so a typo cannot silently mean "the default". Values are cached on
first use and dropped when a test changes ``GATEWAY`` (``override_settings(GATEWAY={...})``
overrides just the names it gives).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    # Fernet keys (urlsafe base64, 32 bytes) or passphrases that encrypt provider keys at rest:
    # the first encrypts, all decrypt. Empty: derived from SECRET_KEY.
    "ENCRYPTION_KEYS": [],
    # Accept ?auth_token=... (the seed's query form). Never written to any log either way.
    "ALLOW_QUERY_TOKEN": True,
    # How long a worker trusts its in-process copy of tokens and the model registry (seconds).
    "CACHE_SECONDS": 5.0,
    # Largest request body accepted on /v1 (413 above it).
    "MAX_BODY_BYTES": 20 * 1024 * 1024,
    # Largest upstream answer held whole (non-streamed; 502 above it), and most bytes one upstream
    # stream may send (the stream ends with an error event past it): a worker's memory stays bounded.
    "MAX_UPSTREAM_RESPONSE_BYTES": 64 * 1024 * 1024,
    "MAX_UPSTREAM_STREAM_BYTES": 64 * 1024 * 1024,
    # Longest a non-streamed request may take upstream, all deployments tried included (504 after it),
    # however slowly the upstream drips its answer.
    "REQUEST_DEADLINE_SECONDS": 300.0,
    # Upstream connection pool per worker: total and per upstream host (0 = no limit).
    "UPSTREAM_MAX_CONNECTIONS": 0,
    "UPSTREAM_MAX_PER_HOST": 0,
    "UPSTREAM_KEEPALIVE_SECONDS": 30.0,
    # Request-log writer: rows per bulk insert and longest wait before a flush. Small, frequent
    # batches: each write holds the GIL briefly, so the event loop's latency tail stays short
    # (bench/: p99 at c=1 went from 16 ms with 1 s/500 rows to ~2 ms).
    "LOG_BATCH_SIZE": 200,
    "LOG_FLUSH_SECONDS": 0.25,
    # Store prompt and completion text on log rows (off: only counts, timings and cost).
    "LOG_BODIES": False,
    # gunicorn settings used by `manage.py gateway_serve`.
    "BIND": "127.0.0.1:8000",
    "WORKERS": 2,
    "BACKLOG": 2048,
    "KEEPALIVE_SECONDS": 75,
    "GRACEFUL_TIMEOUT": 30,
    # Where limit counters live: "redis" or "database"; empty: Redis when REDIS_URL is set, else the
    # database (exact across the workers sharing it).
    "LIMITS_STORE": "",
    # Output tokens a tpm limit or a budget reserves for a request that sets no max_tokens /
    # max_completion_tokens, when its model has no max output tokens either.
    "LIMITS_DEFAULT_MAX_OUTPUT_TOKENS": 4096,
    # How long a parallel-limit slot stays taken without renewal (seconds): its worker renews it every
    # third of this while the request runs, so a crashed worker's slots free themselves after it.
    "LIMITS_PARALLEL_LEASE_SECONDS": 60.0,
    # Whether a token under a budget may use a model with no price (both prices 0), counting it at 0.
    # Default: refused (403 model_not_priced), so that a budget always holds.
    "BUDGET_ALLOWS_UNPRICED_MODELS": False,
}


class GatewaySettings:
    """Attribute access to the gateway's settings, with defaults and checked names."""

    def __init__(self, defaults: dict[str, Any]) -> None:
        self._defaults = defaults
        self._cached: set[str] = set()

    @property
    def user_settings(self) -> dict[str, Any]:
        configured = getattr(settings, "GATEWAY", {}) or {}
        unknown = sorted(set(configured) - set(self._defaults))
        if unknown:
            raise ImproperlyConfigured(f"Unknown GATEWAY setting(s): {', '.join(unknown)}")
        return configured

    def __getattr__(self, name: str) -> Any:
        if name not in self._defaults:
            raise AttributeError(f"Invalid gateway setting: {name!r}")
        value = self.user_settings.get(name, self._defaults[name])
        if name == "ENCRYPTION_KEYS" and not value:
            value = [settings.SECRET_KEY]
        self._cached.add(name)
        setattr(self, name, value)  # later reads are plain attribute lookups (the hot path reads some)
        return value

    def reload(self) -> None:
        for name in self._cached:
            delattr(self, name)
        self._cached.clear()


gateway_settings = GatewaySettings(DEFAULTS)


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting in ("GATEWAY", "SECRET_KEY"):
        gateway_settings.reload()


setting_changed.connect(_reload)
