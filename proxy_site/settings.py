"""Settings for the gateway: the only module that reads the environment.

Everything an operator can change is an environment variable read here, once:

- DATABASE_URL            sqlite:///path (default: db.sqlite3 beside manage.py) or postgres://...
- REDIS_URL               redis://host:port/db; shared counters and cross-worker cache invalidation
- DJANGO_SECRET_KEY       Django's secret; generated into .secret_key on first start if unset
- GATEWAY_ENCRYPTION_KEYS comma-separated keys that encrypt provider API keys at rest (the first
                          encrypts, all decrypt, so keys can be rotated); derived from the
                          secret key if unset
- DJANGO_DEBUG, DJANGO_ALLOWED_HOSTS, GATEWAY_* tuning knobs below.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlparse

BASE_DIR = Path(__file__).resolve().parent.parent
ENV = os.environ


def use_these_settings() -> None:
    """Point Django at this module (unless DJANGO_SETTINGS_MODULE names another): the entry points
    (manage.py, asgi.py, wsgi.py) call this, so that no other module touches the environment."""
    ENV.setdefault("DJANGO_SETTINGS_MODULE", __name__)


def _bool(name: str, default: bool | None) -> bool | None:
    value = ENV.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


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


def _secret_key() -> str:
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


def database_from_url(url: str) -> dict:
    """Turn DATABASE_URL into a Django DATABASES entry (sqlite:/// and postgres:// only)."""
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
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": options,
        }
    raise ValueError(f"DATABASE_URL scheme {parsed.scheme!r} is not supported (use sqlite:// or postgres://)")


SECRET_KEY = _secret_key()
DEBUG = _bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = _list("DJANGO_ALLOWED_HOSTS", ["*"])
CSRF_TRUSTED_ORIGINS = _list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

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

DATABASES = {"default": database_from_url(ENV.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
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

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "build" / "static"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["gateway.access.authentication.GatewayTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
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

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Every log line passes the redactor: no piece of a provider key is written to a log.
    "filters": {"redact": {"()": "gateway.redaction.RedactLogRecords"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": ENV.get("GATEWAY_LOG_LEVEL", "WARNING")},
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
    "LOG_BODIES": ("GATEWAY_LOG_BODIES", _bool),
    "BIND": ("GATEWAY_BIND", _str),
    "WORKERS": ("GATEWAY_WORKERS", _int),
    "BACKLOG": ("GATEWAY_BACKLOG", _int),
    "KEEPALIVE_SECONDS": ("GATEWAY_KEEPALIVE_SECONDS", _int),
    "GRACEFUL_TIMEOUT": ("GATEWAY_GRACEFUL_TIMEOUT", _int),
    "LIMITS_STORE": ("GATEWAY_LIMITS_STORE", _str),
    "LIMITS_DEFAULT_MAX_OUTPUT_TOKENS": ("GATEWAY_LIMITS_DEFAULT_MAX_OUTPUT_TOKENS", _int),
    "LIMITS_PARALLEL_LEASE_SECONDS": ("GATEWAY_LIMITS_PARALLEL_LEASE_SECONDS", _float),
    "BUDGET_ALLOWS_UNPRICED_MODELS": ("GATEWAY_BUDGET_ALLOWS_UNPRICED_MODELS", _bool),
}
GATEWAY = {name: parse(var, None) for name, (var, parse) in _GATEWAY_ENV.items() if ENV.get(var)}
