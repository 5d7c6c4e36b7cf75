"""Errors in the Messages API's envelope: ``{"type": "error", "error": {"type", "message"}}``.

Anthropic's SDKs pick their exception class by the status; the error type names the same kind of
failure in Anthropic's words, and clients such as Claude Code read it.
"""

from __future__ import annotations

from typing import Any

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
               503: "overloaded_error", 529: "overloaded_error"}


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status) or ("invalid_request_error" if 400 <= status < 500 else "api_error")


def envelope(status: int, payload: dict[str, Any]) -> dict[str, Any]:
    """An error payload of the gateway's own envelope (``{"error": {"message", ...}}``) in the Messages API's."""
    error = payload.get("error") or {}
    return {"type": "error", "error": {"type": error_type(status), "message": str(error.get("message") or "")}}


def stream_event(data: bytes) -> bytes:
    """The Messages stream's error event for an error payload (already serialized)."""
    return b"event: error\ndata: " + data + b"\n\n"
