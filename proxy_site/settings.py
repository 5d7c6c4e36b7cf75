"""Settings for the gateway: the only module that reads the environment.

Everything an operator can change is an environment variable read here, once:

- DJANGO_DEBUG            the mode: unset = local (loopback only, plain HTTP, generated secret);
                          true = development (debug pages); false = production (secret key and
                          allowed hosts required, HTTPS enforced: HSTS, SSL redirect, secure cookies)
- DATABASE_URL            sqlite:///path (default: db.sqlite3 beside manage.py) or postgres://...
- REDIS_URL               redis://host:port/db; shared counters and cross-worker cache invalidation
- DJANGO_SECRET_KEY       Django's secret; outside production generated into .secret_key if unset
- GATEWAY_ENCRYPTION_KEYS comma-separated keys that encrypt provider API keys at rest (the first
                          encrypts, all decrypt, so keys can be rotated); derived from the
                          secret key if unset
- DJANGO_ALLOWED_HOSTS, DJANGO_SECURE_*, DJANGO_STATIC_ROOT, GATEWAY_* tuning knobs below.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

from gateway.conf import DEFAULTS as GATEWAY_DEFAULTS

BASE_DIR = Path(__file__).resolve().parent.parent
ENV = os.environ


def use_these_settings() -> None:
    """Point Django at this module (unless DJANGO_SETTINGS_MODULE names another): the entry points
    (manage.py, asgi.py, wsgi.py) call this, so that no other module touches the environment."""
    ENV.setdefault("DJANGO_SETTINGS_MODULE", __name__)


def health_probe() -> tuple[str, str]:
    """For deploy/healthcheck.py: the port of GATEWAY_BIND and the Host header to send, the first of
    DJANGO_ALLOWED_HOSTS as written (none or a wildcard: localhost; ".example.com": a name it matches)."""
    port = ENV.get("GATEWAY_BIND", "127.0.0.1:8000").rpartition(":")[2]
    host = (ENV.get("DJANGO_ALLOWED_HOSTS") or "localhost").split(",")[0].strip()
    host = "localhost" if host in ("", "*") else ("health" + host if host.startswith(".") else host)
    return port, host


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _bool(name: str, default: bool | None) -> bool | None:
    """A yes/no variable; anything but the usual spellings is an error (a typo must not switch
    a security setting off)."""
    value = (ENV.get(name) or "").strip().lower()
    if not value:
        return default
    if value in _TRUE | _FALSE:
        return value in _TRUE
    raise ImproperlyConfigured(f"{name}={ENV[name]!r}: use true or false")


def _log_bodies(name: str, default: str | None) -> str | None:
    """off / all / errors (the bodies of failed requests only); true and false still mean all and off."""
    value = (ENV.get(name) or "").strip().lower()
    if not value:
        return default
    if value in ("off", "all", "errors"):
        return value
    if value in _TRUE | _FALSE:
        return "all" if value in _TRUE else "off"
    raise ImproperlyConfigured(f"{name}={ENV[name]!r}: use off, all or errors")


def _int(name: str, default: int | None) -> int | None:
    value = ENV.get(name)
    return int(value) if value else default


def _float(name: str, default: float | None) -> float | None:
    value = ENV.get(name)
    return float(value) if value else default


def _str(name: str, default: str | None) -> str | None:
    return ENV.get(name) or default


def _list(name: str, default: list[str]) -> list[str]:
    value = ENV.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def _mode() -> str:
    """DJANGO_DEBUG unset: "local"; true: "development"; false: "production"."""
    value = (ENV.get("DJANGO_DEBUG") or "").strip().lower()
    if not value:
        return "local"
    if value not in _TRUE | _FALSE:
        raise ImproperlyConfigured(f"DJANGO_DEBUG={ENV['DJANGO_DEBUG']!r}: use false (production), true "
                                   "(development, with debug pages) or leave it unset (local: loopback only)")
    return "development" if value in _TRUE else "production"


def _required(name: str, why: str) -> str:
    value = (ENV.get(name) or "").strip()
    if not value:
        raise ImproperlyConfigured(f"{name} is not set: with DJANGO_DEBUG=false (production) {why}")
    return value


def _secret_key(mode: str) -> str:
    if mode == "production":
        return _required("DJANGO_SECRET_KEY", "the secret key must come from the environment (50 or more "
                         "random characters, e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(50))').")
    if ENV.get("DJANGO_SECRET_KEY"):
        return ENV["DJANGO_SECRET_KEY"]
    path = BASE_DIR / ".secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_urlsafe(50)
        path.write_text(key)
        path.chmod(0o600)
        return key


def database_from_url(url: str, pool_size: int = GATEWAY_DEFAULTS["DB_POOL_SIZE"],
                      pool_timeout: float = GATEWAY_DEFAULTS["DB_POOL_TIMEOUT"],
                      connect_timeout: float = GATEWAY_DEFAULTS["DB_TIMEOUT_SECONDS"],
                      statement_timeout: float = GATEWAY_DEFAULTS["DB_STATEMENT_TIMEOUT_SECONDS"]) -> dict:
    """Turn DATABASE_URL into a Django DATABASES entry (sqlite:/// and postgres:// only).

    Postgres connections come from one pool per process (Django's psycopg pool) of at most
    ``pool_size``, whatever the traffic: Django's ASGI handler runs each request in a thread of its
    own, so kept-open per-thread connections (CONN_MAX_AGE > 0) grew with the number of requests,
    and closing them per request still opened one per concurrent request. ``pool_size`` 0: no
    pool, a connection per request (e.g. behind PgBouncer).

    A database that is down or hangs must not hold a thread for ever: libpq gives up connecting after
    ``connect_timeout`` seconds and the server ends any statement after ``statement_timeout`` (unless
    the URL's query sets them)."""
    parsed = urlparse(url)
    options = dict(parse_qsl(parsed.query))
    if parsed.scheme == "sqlite":
        name = unquote(parsed.path)
        if name.startswith("//"):  # sqlite:////abs/path -> /abs/path
            name = name[1:]
        elif name.startswith("/"):  # sqlite:///relative -> relative to BASE_DIR
            name = str(BASE_DIR / name[1:])
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": name or str(BASE_DIR / "db.sqlite3"),
            "CONN_MAX_AGE": None,  # a local file: keep each thread's connection instead of reopening it
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # One file per test process, so that parallel test runs never share a database.
            "TEST": {"NAME": str(BASE_DIR / f".test-db-{os.getpid()}.sqlite3")},
        }
    if parsed.scheme in {"postgres", "postgresql", "pgsql"}:
        options.setdefault("connect_timeout", str(max(1, round(connect_timeout))))  # (libpq: whole seconds)
        if statement_timeout > 0 and "statement_timeout" not in options.get("options", ""):
            options["options"] = (options.get("options", "") + f" -c statement_timeout={int(statement_timeout * 1000)}").strip()
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": 0,  # what the pool requires: a request's connection goes back when it ends
            "CONN_HEALTH_CHECKS": True,  # the pool checks a connection before lending it
            "OPTIONS": {**options, **({"pool": {"min_size": min(2, pool_size), "max_size": pool_size,
                                                "timeout": pool_timeout}} if pool_size > 0 else {})},
        }
    raise ValueError(f"DATABASE_URL scheme {parsed.scheme!r} is not supported (use sqlite:// or postgres://)")


def _proxy_ssl_header(name: str) -> tuple[str, str] | None:
    """DJANGO_SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO (or X-Forwarded-Proto): the header
    through which a TLS-terminating proxy says the client used https."""
    value = (ENV.get(name) or "").strip()
    if not value:
        return None
    header = value.upper().replace("-", "_")
    return (header if header.startswith("HTTP_") else f"HTTP_{header}", "https")


# The three modes (README, "Modes"): local needs nothing set and answers only on loopback names over
# plain HTTP; development adds Django's debug pages; production refuses to start without its secret
# key and host names, and enforces HTTPS unless a variable below switches a part of it off.
MODE = _mode()
PRODUCTION = MODE == "production"
SECRET_KEY = _secret_key(MODE)
DEBUG = MODE == "development"
LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
ALLOWED_HOSTS = _list("DJANGO_ALLOWED_HOSTS", [])
if not ALLOWED_HOSTS and PRODUCTION:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS is not set: with DJANGO_DEBUG=false (production) list the "
                               "host names the gateway answers to, comma-separated (e.g. gw.example.com).")
ALLOWED_HOSTS = ALLOWED_HOSTS or LOOPBACK_HOSTS
CSRF_TRUSTED_ORIGINS = _list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# HTTPS (Django's SecurityMiddleware and cookie flags; on in production). Behind a proxy that
# terminates TLS, set DJANGO_SECURE_PROXY_SSL_HEADER so that Django sees which requests were https,
# or DJANGO_SECURE_SSL_REDIRECT=false when the proxy itself redirects plain HTTP.
SECURE_PROXY_SSL_HEADER = _proxy_ssl_header("DJANGO_SECURE_PROXY_SSL_HEADER")
SECURE_SSL_REDIRECT = _bool("DJANGO_SECURE_SSL_REDIRECT", PRODUCTION)
SECURE_REDIRECT_EXEMPT = [r"^health$"]  # load balancers and orchestrators probe it over plain HTTP
SECURE_HSTS_SECONDS = _int("DJANGO_SECURE_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
# Preloading is a commitment for the whole domain that browsers keep for months: only on request.
SECURE_HSTS_PRELOAD = _bool("DJANGO_SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = _bool("DJANGO_SESSION_COOKIE_SECURE", PRODUCTION)
CSRF_COOKIE_SECURE = _bool("DJANGO_CSRF_COOKIE_SECURE", PRODUCTION)
# security.W021 only says that the site could not be submitted to the browsers' preload list.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served locally: the docs page needs no internet
    "gateway",
]

MIDDLEWARE = [
    "corsheaders.middleware.CorsMiddleware",
    # Outermost but CORS: what any other middleware or view adds passes the redactor too.
    "gateway.api.middleware.RedactSecretsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "proxy_site.urls"
ASGI_APPLICATION = "proxy_site.asgi.application"
WSGI_APPLICATION = "proxy_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": database_from_url(
    ENV.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
    pool_size=_int("GATEWAY_DB_POOL_SIZE", GATEWAY_DEFAULTS["DB_POOL_SIZE"]),
    pool_timeout=_float("GATEWAY_DB_POOL_TIMEOUT", GATEWAY_DEFAULTS["DB_POOL_TIMEOUT"]),
    connect_timeout=_float("GATEWAY_DB_TIMEOUT_SECONDS", GATEWAY_DEFAULTS["DB_TIMEOUT_SECONDS"]),
    statement_timeout=_float("GATEWAY_DB_STATEMENT_TIMEOUT_SECONDS", GATEWAY_DEFAULTS["DB_STATEMENT_TIMEOUT_SECONDS"]),
)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = ENV.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Static files (the admin's and the API docs' CSS/JS), served by the gateway itself with WhiteNoise
# (gateway/edge/static.py). Production: from STATIC_ROOT, which `collectstatic` fills (gateway_serve
# runs it, the Dockerfile at build time) with content-hashed names, cached by browsers for good
# (immutable), and gzip copies; the app refuses to start without them. Local and development modes:
# straight from the apps' directories (WhiteNoise's finders), nothing to collect.
STATIC_URL = "static/"
STATIC_ROOT = Path(_str("DJANGO_STATIC_ROOT", None) or BASE_DIR / "build" / "static")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage" if PRODUCTION
                    else "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = not PRODUCTION

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["gateway.access.authentication.GatewayTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["gateway.api.parsers.JSONParser"],  # orjson, with MAX_JSON_DEPTH
    "EXCEPTION_HANDLER": "gateway.errors.drf_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# The gateway's own OpenAPI description (gateway/api/openapi.py): /v1/openapi.json and /v1/docs.
SPECTACULAR_SETTINGS = {
    "TITLE": "AI gateway API",
    "DESCRIPTION": "An OpenAI-compatible API in front of many AI providers. Every error has OpenAI's "
                   'envelope {"error": {"message", "type", "param", "code"}}.',
    "VERSION": "1",
    "OAS_VERSION": "3.0.3",
    "SCHEMA_PATH_PREFIX": "/v1",
    "SERVE_PUBLIC": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    # (without drf-spectacular's enum hook: the enums stay inline, e.g. each body's own "object" value)
    "POSTPROCESSING_HOOKS": ["gateway.api.openapi.add_undiscovered_operations"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # validatorUrl: null keeps Swagger UI from sending the description to an online validator.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
}

# The seed allows every origin: tokens are sent as headers, never as cookies.
CORS_ALLOWED_ORIGINS = _list("GATEWAY_CORS_ALLOWED_ORIGINS", [])
CORS_ALLOW_ALL_ORIGINS = not CORS_ALLOWED_ORIGINS
CORS_URLS_REGEX = r"^/(v1/.*|health)$"
CORS_ALLOW_HEADERS = (
    "accept", "authorization", "content-type", "user-agent", "x-auth-token", "x-session-id", "x-request-id",
    "openai-organization", "openai-project",
    # what the official OpenAI JS SDK sends from a browser
    "x-stainless-arch", "x-stainless-lang", "x-stainless-os", "x-stainless-package-version",
    "x-stainless-runtime", "x-stainless-runtime-version", "x-stainless-retry-count", "x-stainless-timeout",
    "x-stainless-helper-method",
)
# The request id, and the rate-limit headers (OpenAI's names) a browser client may read.
CORS_EXPOSE_HEADERS = (
    "x-request-id", "retry-after",
    "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens",
)

def _log_format(name: str) -> str:
    """text (default) or json (one JSON object per line, for a log pipeline)."""
    value = (ENV.get(name) or "text").strip().lower()
    if value not in ("text", "json"):
        raise ImproperlyConfigured(f"{name}={ENV[name]!r}: use text or json")
    return value


# Logging, configured here only. GATEWAY_LOG_FORMAT: text or json (gateway/log_format.py).
# GATEWAY_LOG_REQUESTS: one line per finished /v1 call on the "gateway.requests" logger (written off
# the event loop, gateway/usage/request_lines.py); default on in development and with the json format.
LOG_FORMAT = _log_format("GATEWAY_LOG_FORMAT")
LOG_REQUESTS = _bool("GATEWAY_LOG_REQUESTS", DEBUG or LOG_FORMAT == "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Every log line passes the redactor: no piece of a provider key is written to a log.
    "filters": {"redact": {"()": "gateway.redaction.RedactLogRecords"}},
    "formatters": {"text": {"()": "gateway.log_format.TextFormatter"},
                   "json": {"()": "gateway.log_format.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["redact"], "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": ENV.get("GATEWAY_LOG_LEVEL", "WARNING")},
    "loggers": {"gateway.requests": {"level": "INFO" if LOG_REQUESTS else "WARNING"}},
}

# --- Gateway ---------------------------------------------------------------------------
# Only what the environment sets: every other name takes its documented default from
# gateway/conf.py (``gateway_settings``), which also rejects unknown names.
_GATEWAY_ENV = {
    "ENCRYPTION_KEYS": ("GATEWAY_ENCRYPTION_KEYS", _list),
    "ALLOW_QUERY_TOKEN": ("GATEWAY_ALLOW_QUERY_TOKEN", _bool),
    "CACHE_SECONDS": ("GATEWAY_CACHE_SECONDS", _float),
    "MAX_BODY_BYTES": ("GATEWAY_MAX_BODY_BYTES", _int),
    "MAX_UPSTREAM_RESPONSE_BYTES": ("GATEWAY_MAX_UPSTREAM_RESPONSE_BYTES", _int),
    "MAX_UPSTREAM_STREAM_BYTES": ("GATEWAY_MAX_UPSTREAM_STREAM_BYTES", _int),
    "REQUEST_DEADLINE_SECONDS": ("GATEWAY_REQUEST_DEADLINE_SECONDS", _float),
    "UPSTREAM_MAX_CONNECTIONS": ("GATEWAY_UPSTREAM_MAX_CONNECTIONS", _int),
    "UPSTREAM_MAX_PER_HOST": ("GATEWAY_UPSTREAM_MAX_PER_HOST", _int),
    "UPSTREAM_KEEPALIVE_SECONDS": ("GATEWAY_UPSTREAM_KEEPALIVE_SECONDS", _float),
    "LOG_BATCH_SIZE": ("GATEWAY_LOG_BATCH_SIZE", _int),
    "LOG_FLUSH_SECONDS": ("GATEWAY_LOG_FLUSH_SECONDS", _float),
    "LOG_BODIES": ("GATEWAY_LOG_BODIES", _log_bodies),
    "AUTH_FAILURE_LOG_PER_MINUTE": ("GATEWAY_AUTH_FAILURE_LOG_PER_MINUTE", _int),
    "BIND": ("GATEWAY_BIND", _str),
    "WORKERS": ("GATEWAY_WORKERS", _int),
    "BACKLOG": ("GATEWAY_BACKLOG", _int),
    "KEEPALIVE_SECONDS": ("GATEWAY_KEEPALIVE_SECONDS", _int),
    "GRACEFUL_TIMEOUT": ("GATEWAY_GRACEFUL_TIMEOUT", _int),
    "OPS_TOKEN": ("GATEWAY_OPS_TOKEN", _str),
    "MAX_HEADER_BYTES": ("GATEWAY_MAX_HEADER_BYTES", _int),
    "MAX_JSON_DEPTH": ("GATEWAY_MAX_JSON_DEPTH", _int),
    "DB_POOL_SIZE": ("GATEWAY_DB_POOL_SIZE", _int),  # (also read into DATABASES above)
    "DB_POOL_TIMEOUT": ("GATEWAY_DB_POOL_TIMEOUT", _float),
    "ADMIN_LOGIN_MAX_FAILURES_PER_USER": ("GATEWAY_ADMIN_LOGIN_MAX_FAILURES_PER_USER", _int),
    "ADMIN_LOGIN_MAX_FAILURES_PER_IP": ("GATEWAY_ADMIN_LOGIN_MAX_FAILURES_PER_IP", _int),
    "ADMIN_LOGIN_WINDOW_SECONDS": ("GATEWAY_ADMIN_LOGIN_WINDOW_SECONDS", _int),
    "LOG_RETENTION_DAYS": ("GATEWAY_LOG_RETENTION_DAYS", _int),
    "LIMITS_STORE": ("GATEWAY_LIMITS_STORE", _str),
    "LIMITS_DEFAULT_MAX_OUTPUT_TOKENS": ("GATEWAY_LIMITS_DEFAULT_MAX_OUTPUT_TOKENS", _int),
    "LIMITS_PARALLEL_LEASE_SECONDS": ("GATEWAY_LIMITS_PARALLEL_LEASE_SECONDS", _float),
    "BUDGET_ALLOWS_UNPRICED_MODELS": ("GATEWAY_BUDGET_ALLOWS_UNPRICED_MODELS", _bool),
    "ANONYMOUS": ("GATEWAY_ANONYMOUS", _bool),
    "RESPONSES_RETENTION_DAYS": ("GATEWAY_RESPONSES_RETENTION_DAYS", _int),
    "METRICS": ("GATEWAY_METRICS", _bool),
    "METRICS_TOKEN": ("GATEWAY_METRICS_TOKEN", _str),
    "METRICS_DIR": ("GATEWAY_METRICS_DIR", _str),
    "COOLDOWN_FAILURES": ("GATEWAY_COOLDOWN_FAILURES", _int),
    "COOLDOWN_WINDOW_SECONDS": ("GATEWAY_COOLDOWN_WINDOW_SECONDS", _float),
    "COOLDOWN_SECONDS": ("GATEWAY_COOLDOWN_SECONDS", _float),
    "COOLDOWN_MAX_RETRY_AFTER_SECONDS": ("GATEWAY_COOLDOWN_MAX_RETRY_AFTER_SECONDS", _float),
    "COOLDOWN_SYNC_SECONDS": ("GATEWAY_COOLDOWN_SYNC_SECONDS", _float),
    "MAX_ATTEMPTS": ("GATEWAY_MAX_ATTEMPTS", _int),
    "FALLBACK_DEADLINE_SECONDS": ("GATEWAY_FALLBACK_DEADLINE_SECONDS", _float),
    "STALE_CACHE_SECONDS": ("GATEWAY_STALE_CACHE_SECONDS", _float),
    "DB_TIMEOUT_SECONDS": ("GATEWAY_DB_TIMEOUT_SECONDS", _float),  # (also read into DATABASES above)
    "DB_STATEMENT_TIMEOUT_SECONDS": ("GATEWAY_DB_STATEMENT_TIMEOUT_SECONDS", _float),  # (likewise)
    "LOG_MAX_QUEUED_ROWS": ("GATEWAY_LOG_MAX_QUEUED_ROWS", _int),
    "LOG_SPOOL_PATH": ("GATEWAY_LOG_SPOOL_PATH", _str),
    "REDIS_FAILURE": ("GATEWAY_REDIS_FAILURE", _str),
}
GATEWAY = {name: parse(var, None) for name, (var, parse) in _GATEWAY_ENV.items() if ENV.get(var)}
if GATEWAY.get("METRICS") and not (GATEWAY.get("METRICS_TOKEN") or GATEWAY.get("OPS_TOKEN")):
    raise ImproperlyConfigured("GATEWAY_METRICS=true needs GATEWAY_METRICS_TOKEN (or GATEWAY_OPS_TOKEN): /metrics is "
                               "never open, a scrape sends `Authorization: Bearer <token>`.")
# Set by `manage.py gateway_serve` for its workers when the metrics are on: where every worker writes its
# metric files (prometheus_client's multiprocess mode), so that one worker's scrape counts them all.
METRICS_MULTIPROCESS_DIR = ENV.get("PROMETHEUS_MULTIPROC_DIR", "")
