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
    # Largest request body accepted (413 above it), on every path: the hot path's and Django's
    # (whose own 2.5 MB DATA_UPLOAD_MAX_MEMORY_SIZE then applies to the admin's forms only).
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
    # Store prompt and completion text on log rows: "off" (only counts, timings and cost), "all", or
    # "errors" (only on the rows of failed requests, status >= 400). True and False mean "all" and "off".
    "LOG_BODIES": "off",
    # Failed authentications (401 from the token check) logged one row each, per minute and per
    # process; past that they are counted and each minute's count is written as one summary row
    # (error_type "auth_failures_suppressed"), so a flood of random tokens cannot fill the log.
    # 0: only the summaries.
    "AUTH_FAILURE_LOG_PER_MINUTE": 60,
    # gunicorn settings used by `manage.py gateway_serve`.
    "BIND": "127.0.0.1:8000",
    "WORKERS": 2,
    "BACKLOG": 2048,
    "KEEPALIVE_SECONDS": 75,
    "GRACEFUL_TIMEOUT": 30,
    # A secret that lets a request see /health's detail (each provider account's name, state and
    # last error; the log writer's counters) as `Authorization: Bearer <OPS_TOKEN>`. Empty: no
    # token does (only a logged-in staff user of the admin).
    "OPS_TOKEN": "",
    # Largest total size of a request's headers (each name and value plus ": " and CRLF), on every
    # path: 431 above it. The HTTP server (httptools) sets no limit of its own.
    "MAX_HEADER_BYTES": 32 * 1024,
    # Deepest nesting of arrays and objects accepted in a JSON request body (400 invalid_json above it).
    "MAX_JSON_DEPTH": 64,
    # Postgres connections per worker process, whatever the traffic (Django's psycopg pool; read once,
    # into DATABASES): requests beyond it wait for a free connection up to DB_POOL_TIMEOUT seconds,
    # then fail (/health: 503). Size the database for workers x DB_POOL_SIZE (+ management commands).
    # 0: no pool, one connection per request while it runs (e.g. behind PgBouncer). SQLite: unused.
    "DB_POOL_SIZE": 8,
    "DB_POOL_TIMEOUT": 10.0,
    # Admin login throttling: after this many failed logins for one username, or from one client
    # address, within the window (seconds, from the first failure), further attempts are refused
    # until the window has passed (0: that counter is off). Counted in Django's cache: with REDIS_URL
    # shared by every worker, without it per worker process. One address gets more tries than one
    # username, for several admins behind one NAT.
    "ADMIN_LOGIN_MAX_FAILURES_PER_USER": 5,
    "ADMIN_LOGIN_MAX_FAILURES_PER_IP": 20,
    "ADMIN_LOGIN_WINDOW_SECONDS": 900,
    # Days of raw request-log rows `manage.py gateway_usage prune` keeps before today (older whole days
    # are deleted; the daily aggregates, UsageDaily, stay). 0: keep everything.
    "LOG_RETENTION_DAYS": 0,
    # Where limit counters live: "redis" or "database"; empty: Redis when REDIS_URL is set, else the
    # database (exact across the workers sharing it).
    "LIMITS_STORE": "",
    # Output tokens a tpm limit or a budget reserves for a request that sets no max_tokens /
    # max_completion_tokens, when its model has no max output tokens either.
    "LIMITS_DEFAULT_MAX_OUTPUT_TOKENS": 4096,
    # How long a parallel-limit slot stays taken without renewal (seconds): its worker renews it every
    # third of this while the request runs, so a crashed worker's slots free themselves after it.
    "LIMITS_PARALLEL_LEASE_SECONDS": 60.0,
    # Whether a token under a budget may use a model whose price is unknown (neither its entry nor the
    # price list has one), counting it at 0.
    # Default: refused (403 model_not_priced), so that a budget always holds.
    "BUDGET_ALLOWS_UNPRICED_MODELS": False,
    # Anonymous access (the seed's "no token configured: every request is allowed"): a /v1 request
    # that carries no token at all is served as the one `anonymous` identity, with the allow-list
    # and limits of the config file's `anonymous:` section (one reserved ApiToken row; see
    # gateway/access/authentication.py).
    # A wrong token is still refused (401). Off: a request without a token gets the 401.
    "ANONYMOUS": False,
    # Days a stored Responses API response (``store``, the API's default) is kept for
    # ``previous_response_id`` and ``GET /v1/responses/{id}``: `manage.py gateway_responses prune`
    # deletes older ones (run it daily, as the log's prune). 0: keep them until deleted.
    "RESPONSES_RETENTION_DAYS": 30,
    # Prometheus metrics of the /v1 calls at GET /metrics (every worker's counts); off: /metrics is a 404
    # and nothing is counted.
    "METRICS": False,
    # The secret a scrape presents as `Authorization: Bearer <METRICS_TOKEN>`. Empty: OPS_TOKEN is
    # accepted instead; with neither, /metrics answers no one (and the environment cannot enable it).
    "METRICS_TOKEN": "",
    # Where `manage.py gateway_serve` keeps the workers' metric files (emptied at each start). Empty: a new
    # temporary directory per start, removed when the server exits.
    "METRICS_DIR": "",
    # Cooldowns (circuit breaker) per deployment, i.e. provider account x upstream model: after this many
    # failures (no connection, a timeout, 408/429/5xx or another status worth trying the next deployment
    # for, an answer the gateway cannot read) within the window (seconds, from the first failure), the
    # deployment is tried only when nothing else is left, for COOLDOWN_SECONDS. Each provider account
    # may override the three. 0 failures: no cooldowns. Shared by every worker and instance through
    # Redis when REDIS_URL is set, else per process.
    "COOLDOWN_FAILURES": 3,
    "COOLDOWN_WINDOW_SECONDS": 60.0,
    "COOLDOWN_SECONDS": 30.0,
    # A 429 or 503 with Retry-After (seconds or an HTTP date) cools its deployment that long when it is
    # longer than COOLDOWN_SECONDS, at most this many seconds.
    "COOLDOWN_MAX_RETRY_AFTER_SECONDS": 300.0,
    # With Redis, how long a worker uses its copy of the cooldowns before reading them again (seconds;
    # one small read per worker per interval, none per request; its own failures update it at once).
    "COOLDOWN_SYNC_SECONDS": 1.0,
    # Most upstream attempts per request, its deployments and its models' fallbacks' together.
    "MAX_ATTEMPTS": 10,
    # No new attempt (another deployment or a fallback model) starts once this many seconds have passed
    # since the request's first one; the last error is answered.
    "FALLBACK_DEADLINE_SECONDS": 120.0,
    # While the database is unreachable or hangs, tokens and the model registry a worker has already
    # read keep being served from its in-process copy for up to this long after it was last read
    # (seconds; 0: never). Unknown tokens get a 503 meanwhile.
    "STALE_CACHE_SECONDS": 300.0,
    # Longest a request waits for the database on its path (token and registry lookups, the database
    # limit store), in seconds; then the stale copy is served, or a 503. Also libpq's connect_timeout.
    "DB_TIMEOUT_SECONDS": 3.0,
    # PostgreSQL's statement_timeout for every connection of the gateway (seconds; 0: none; read once,
    # into DATABASES), so that a locked table or a stuck query cannot hold a worker thread for ever.
    "DB_STATEMENT_TIMEOUT_SECONDS": 30.0,
    # Request-log rows each process keeps in memory while the database cannot take them; past this the
    # oldest are dropped, loudly (an error line every 1000, and /health's "dropped" count).
    "LOG_MAX_QUEUED_ROWS": 200_000,
    # Where rows still unwritten at shutdown go (JSON lines); the next start writes them to the database.
    # Empty: request-log-spool.jsonl beside manage.py (where the local .secret_key is).
    "LOG_SPOOL_PATH": "",
    # When Redis (the limit counters' store) is unreachable: "open" serves requests, each process
    # counting the limits on its own meanwhile (a per-process fallback: limits hold per worker, not
    # across them); "closed" refuses requests that have limits with a 503.
    "REDIS_FAILURE": "open",
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
