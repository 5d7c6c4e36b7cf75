"""CORS headers for the hot path, from django-cors-headers' own settings.

Django views get them from ``corsheaders.middleware.CorsMiddleware``, which also answers every
preflight (``OPTIONS``), including those for hot-path URLs (the dispatcher hands OPTIONS to
Django). The hot path adds the same headers to its actual responses here.
"""

from __future__ import annotations

import re

from corsheaders.conf import conf


def origin_allowed(origin: str) -> bool:
    if conf.CORS_ALLOW_ALL_ORIGINS:
        return True
    if origin in conf.CORS_ALLOWED_ORIGINS:
        return True
    return any(re.match(pattern, origin) for pattern in conf.CORS_ALLOWED_ORIGIN_REGEXES)


def response_headers(origin: str | None) -> dict[str, str]:
    if not origin or not origin_allowed(origin):
        return {}
    headers = {"Access-Control-Allow-Origin": "*" if conf.CORS_ALLOW_ALL_ORIGINS and not conf.CORS_ALLOW_CREDENTIALS else origin}
    if headers["Access-Control-Allow-Origin"] != "*":
        headers["Vary"] = "Origin"
    if conf.CORS_ALLOW_CREDENTIALS:
        headers["Access-Control-Allow-Credentials"] = "true"
    if conf.CORS_EXPOSE_HEADERS:
        headers["Access-Control-Expose-Headers"] = ", ".join(conf.CORS_EXPOSE_HEADERS)
    return headers
