"""Every error a client sees is OpenAI's envelope: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from providers.base import ProviderError


def payload(exc: ProviderError) -> dict[str, Any]:
    return {"error": {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}}


class GatewayError(ProviderError):
    """An error raised by the gateway itself (auth, validation, routing, limits)."""


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> GatewayError:
    return GatewayError(400, message, "invalid_request_error", code, param)


def authentication_failed(message: str) -> GatewayError:
    return GatewayError(401, message, "invalid_request_error", "invalid_api_key")


def model_not_found(model: str) -> GatewayError:
    return GatewayError(
        404, f"The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error", "model_not_found", "model",
    )


def model_not_allowed(model: str) -> GatewayError:
    return GatewayError(
        403, f"This API token is not allowed to use the model `{model}`.",
        "permission_error", "model_not_allowed", "model",
    )


def envelope(message: str, type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


_DRF_TYPES = {
    drf_exceptions.NotAuthenticated: (401, "invalid_request_error", "invalid_api_key"),
    drf_exceptions.AuthenticationFailed: (401, "invalid_request_error", "invalid_api_key"),
    drf_exceptions.PermissionDenied: (403, "permission_error", None),
    drf_exceptions.NotFound: (404, "invalid_request_error", "not_found"),
    drf_exceptions.MethodNotAllowed: (405, "invalid_request_error", "method_not_allowed"),
    drf_exceptions.ParseError: (400, "invalid_request_error", "invalid_json"),
    drf_exceptions.ValidationError: (400, "invalid_request_error", None),
    drf_exceptions.Throttled: (429, "rate_limit_error", "rate_limit_exceeded"),
}


def drf_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's single exception handler: every DRF view's error in OpenAI's envelope."""
    if isinstance(exc, ProviderError):
        response = Response(payload(exc), status=exc.status)
        if exc.retry_after:
            response["Retry-After"] = exc.retry_after
        return response
    for klass, (status, type_, code) in _DRF_TYPES.items():
        if isinstance(exc, klass):
            detail = exc.detail
            param = None
            if isinstance(detail, dict) and detail:
                param, detail = next(iter(detail.items()))
            if isinstance(detail, list) and detail:
                detail = detail[0]
            response = Response(envelope(str(detail), type_, param, code), status=status)
            if isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
                response["WWW-Authenticate"] = 'Bearer realm="api"'
            return response
    if isinstance(exc, drf_exceptions.APIException):
        return Response(envelope(str(exc.detail), "api_error", None, exc.default_code), status=exc.status_code)
    return None


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/v1/") or request.path == "/health"


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's 404 handler: OpenAI's envelope for API paths, Django's page elsewhere (the admin)."""
    if _is_api(request):
        return JsonResponse(envelope(f"Unknown path: {request.path[:200]}", "invalid_request_error", None, "not_found"),
                            status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's 500 handler: never a stack trace; OpenAI's envelope for API paths."""
    if _is_api(request):
        return JsonResponse(envelope("The gateway failed to handle this request.", "server_error"), status=500)
    return defaults.server_error(request)
