"""GET /metrics: the gateway's Prometheus metrics (gateway/usage/metrics.py), for a scraper with the token.

Off unless ``GATEWAY_METRICS`` (then the path is a 404 like any unknown one). A scrape presents
``Authorization: Bearer <GATEWAY_METRICS_TOKEN>`` (or, when that is not set, ``GATEWAY_OPS_TOKEN``);
with neither set no one is answered. Under ``gateway_serve`` the answer sums every worker's files.
"""

from __future__ import annotations

import hashlib
import hmac

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from gateway import errors
from gateway.conf import gateway_settings
from gateway.errors import GatewayError, method_not_allowed, render
from gateway.usage import metrics
from gateway.usage.observer import scrape_samplers


def expected_token() -> str:
    return gateway_settings.METRICS_TOKEN or gateway_settings.OPS_TOKEN


def presents(authorization: str | None, expected: str) -> bool:
    """``Bearer <expected>``, compared as SHA-256 digests in constant time (the header form only: a
    secret in a URL would end up in access logs)."""
    if not expected or not authorization:
        return False
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return False
    presented = value.strip().encode("latin-1", "replace")
    return hmac.compare_digest(hashlib.sha256(presented).digest(), hashlib.sha256(expected.encode()).digest())


def _refuse(exc: GatewayError) -> JsonResponse:
    status, headers, payload = render(exc)
    return JsonResponse(payload, status=status, headers=headers)


@csrf_exempt
async def metrics_view(request: HttpRequest) -> HttpResponse:
    if not gateway_settings.METRICS:
        return errors.not_found(request)
    if request.method not in ("GET", "HEAD"):
        return _refuse(method_not_allowed(str(request.method), "GET, HEAD"))
    expected = expected_token()
    if not expected:
        return _refuse(GatewayError(403, "No metrics token is configured: set GATEWAY_METRICS_TOKEN.",
                                    "permission_error", "metrics_token_not_configured"))
    if not presents(request.headers.get("Authorization"), expected):
        return _refuse(GatewayError(401, "Send the metrics token as 'Authorization: Bearer <GATEWAY_METRICS_TOKEN>'.",
                                    "invalid_request_error", "invalid_metrics_token",
                                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'}))
    # (reading and merging every worker's files is file I/O: off the event loop)
    body, content_type = await sync_to_async(metrics.exposition, thread_sensitive=False)(scrape_samplers())
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
