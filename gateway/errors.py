"""Every error a client sees is OpenAI's envelope: {"error": {"message", "type", "param", "code"}},
except on the Messages API's paths, whose views render the same errors in that API's own envelope
(``{"type": "error", "error": {"type", "message"}}``, the ``style`` argument of ``render``).

``render(exc)`` is the one place an exception becomes (status, headers, payload): the hot path's
responses and stream error events, DRF's exception handler and Django's 404/500 handlers all
call it.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from providers.base import ProviderError
from providers.messages import errors as messages_errors

Payload = dict[str, Any]
logger = logging.getLogger(__name__)


class GatewayError(ProviderError):
    """An error raised by the gateway itself (auth, validation, routing, limits), with extra response headers."""

    def __init__(self, status: int, message: str, type: str = "upstream_error", code: str | None = None,
                 param: str | None = None, retry_after: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status, message, type, code, param, retry_after)
        self.headers = headers or {}


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> GatewayError:
    return GatewayError(400, message, "invalid_request_error", code, param)


def authentication_failed(message: str) -> GatewayError:
    return GatewayError(401, message, "invalid_request_error", "invalid_api_key")


def not_authenticated() -> GatewayError:
    return authentication_failed(
        "You didn't provide an API key. Send it as 'Authorization: Bearer <token>', 'X-AUTH-TOKEN: <token>' "
        "or 'X-API-Key: <token>'."
    )


def method_not_allowed(method: str, allowed: str) -> GatewayError:
    return GatewayError(405, f"Method {method} is not allowed here; use {allowed}.", "invalid_request_error",
                        "method_not_allowed", headers={"Allow": allowed})


def body_too_large(limit: int) -> GatewayError:
    return GatewayError(413, f"The request body is larger than {limit} bytes.", "invalid_request_error",
                        "request_too_large")


def headers_too_large(limit: int) -> GatewayError:
    return GatewayError(431, f"The request's headers are larger than {limit} bytes in total.",
                        "invalid_request_error", "request_header_fields_too_large", headers={"Connection": "close"})


def server_failed() -> GatewayError:
    return GatewayError(500, "The gateway failed to handle this request.", "server_error")


def client_closed() -> GatewayError:
    """The client left before its answer was complete (logged as 499, nginx's code; never sent)."""
    return GatewayError(499, "The client closed the connection.", "client_closed")


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


def envelope(message: str, type: str, param: str | None = None, code: str | None = None) -> Payload:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


# DRF's own exceptions (raised by its parsers, permissions and throttles) as OpenAI's types and codes.
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
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="api"'}


def _drf(exc: drf_exceptions.APIException) -> tuple[int, dict[str, str], Payload]:
    for klass, (status, type_, code) in _DRF_TYPES.items():
        if isinstance(exc, klass):
            detail: Any = exc.detail
            param = None
            if isinstance(detail, dict) and detail:
                param, detail = next(iter(detail.items()))
            if isinstance(detail, list) and detail:
                detail = detail[0]
            headers = dict(_CHALLENGE) if status == 401 else {}
            wait = getattr(exc, "wait", None)
            if wait is not None:
                headers["Retry-After"] = str(int(wait))
            return status, headers, envelope(str(detail), type_, param, code)
    return exc.status_code, {}, envelope(str(exc.detail), "api_error", None, exc.default_code)


# The error envelopes the API speaks, by the API a view serves (``HotView.error_style``): the default
# (``{"error": {"message", "type", "param", "code"}}``), and the Messages API's.
STYLES = {"default": lambda status, payload: payload, "messages": messages_errors.envelope}


def render(exc: BaseException, style: str = "default") -> tuple[int, dict[str, str], Payload]:
    """The status, response headers and error payload a client gets for this exception, in the
    envelope of the API it called (``style``: the default unless a view speaks another API's).

    Django's ``SuspiciousOperation`` is a 400 (413 for a body over its limit), as Django answers it;
    anything else that is not one of the API's own errors is a 500 that says nothing about its cause.
    """
    status, headers, payload = _render(exc)
    return status, headers, STYLES[style](status, payload)


def _render(exc: BaseException) -> tuple[int, dict[str, str], Payload]:
    if isinstance(exc, ProviderError):
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.retry_after:
            headers["Retry-After"] = exc.retry_after
        if exc.status == 401:
            headers.update(_CHALLENGE)
        return exc.status, headers, envelope(exc.message, exc.type, exc.param, exc.code)
    if isinstance(exc, drf_exceptions.APIException):
        return _drf(exc)
    if isinstance(exc, Http404):
        return 404, {}, envelope("Not found.", "invalid_request_error", None, "not_found")
    if isinstance(exc, RequestDataTooBig):
        return _render(body_too_large(settings.DATA_UPLOAD_MAX_MEMORY_SIZE))
    if isinstance(exc, SuspiciousOperation):  # Django's own 400s: too many parameters, a disallowed host, ...
        return _render(invalid_request("The gateway could not accept this request.", code="bad_request"))
    return _render(server_failed())


def error_event(exc: BaseException, style: str = "default") -> bytes:
    """How a failure after a stream started reaches the client: an SSE event carrying the error payload
    (the Messages API's streams name it: ``event: error``)."""
    payload = render(exc, style)[2]
    if style == "messages":
        return messages_errors.stream_event(orjson.dumps(payload))
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def drf_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's single exception handler: every DRF view's error in OpenAI's envelope.

    An unexpected exception is logged and answered as the plain 500 here too, not left to Django:
    with DEBUG, Django would answer it with its technical page, which shows the query string (and
    so a ``?auth_token=``) to whoever sent the request — or to whoever sees the page next.
    """
    if isinstance(exc, SuspiciousOperation):  # logged where Django would log it
        logging.getLogger(f"django.security.{type(exc).__name__}").error(str(exc))
    elif not isinstance(exc, ProviderError | drf_exceptions.APIException):
        request = context.get("request")
        logger.error("unhandled error in %s", getattr(request, "path", "?"), exc_info=exc)
    status, headers, payload = render(exc)
    return Response(payload, status=status, headers=headers)


def is_api_path(path: str) -> bool:
    """The API's paths (errors in OpenAI's envelope); the rest is the admin's."""
    return path.startswith("/v1/") or path == "/health"


def _is_api(request: HttpRequest) -> bool:
    return is_api_path(request.path)


def _json(exc: BaseException) -> JsonResponse:
    status, headers, payload = render(exc)
    return JsonResponse(payload, status=status, headers=headers)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's 404 handler: OpenAI's envelope for API paths, Django's page elsewhere (the admin)."""
    if _is_api(request):
        return _json(GatewayError(404, f"Unknown path: {request.path[:200]}", "invalid_request_error", "not_found"))
    return defaults.page_not_found(request, exception)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's 400 handler (what it answers to a ``SuspiciousOperation``): OpenAI's envelope for API
    paths — 413 for a body over Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` — Django's page elsewhere."""
    if not _is_api(request):
        return defaults.bad_request(request, exception)
    return _json(exception if isinstance(exception, SuspiciousOperation) else SuspiciousOperation())


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's 500 handler: never a stack trace; OpenAI's envelope for API paths."""
    if _is_api(request):
        return _json(server_failed())
    return defaults.server_error(request)


def shutting_down() -> GatewayError:
    """A request still running when a worker's grace period ended (graceful shutdown)."""
    return GatewayError(503, "The gateway is restarting and could not finish this request in time; retry it.",
                        "server_error", "server_shutting_down", retry_after="1")


def database_unavailable(what: str) -> GatewayError:
    """The database is away and this worker does not know the answer (an unknown token, no registry)."""
    return GatewayError(503, f"The gateway's database is unavailable and {what}; retry shortly.",
                        "server_error", "database_unavailable", retry_after="5")
