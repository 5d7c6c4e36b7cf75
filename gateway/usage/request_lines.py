"""One log line per finished /v1 call, on the ``gateway.requests`` logger (INFO).

Written by the observer thread (gateway/usage/observer.py), never on the event loop. Whether the
lines are written at all (``GATEWAY_LOG_REQUESTS``) and how they look (``GATEWAY_LOG_FORMAT``: text
for people, one JSON object per line for a log pipeline) is set in one place, settings.LOGGING; the
formatters are in gateway/log_format.py. The line holds the token's prefix (its first characters,
shown in the admin), never the token; like every log line it passes the redactor.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gateway.usage.metrics import Observation

logger = logging.getLogger("gateway.requests")


def fields(obs: Observation) -> dict[str, Any]:
    """The line's fields, in this order (JSON keys; the text form shows them as key=value)."""
    row = obs.row
    created = row.get("created_at")
    cost = row.get("cost")
    return {
        "time": created.isoformat() if isinstance(created, datetime) else None,
        "request_id": row.get("request_id") or "",
        "endpoint": row.get("endpoint") or "",
        "token": obs.token_prefix,
        "team": row.get("team_id"),
        "model": row.get("requested_model") or "",
        "entry": obs.model,
        "provider": row.get("provider_account") or "",
        "upstream_model": row.get("resolved_model") or "",
        "status": row.get("status_code"),
        "latency_ms": row.get("latency_ms"),
        "ttft_ms": row.get("ttft_ms"),
        "prompt_tokens": row.get("prompt_tokens") or 0,
        "completion_tokens": row.get("completion_tokens") or 0,
        "usage_estimated": bool(row.get("usage_estimated")),
        "cost_usd": None if cost is None else format(cost, "f"),
        "stream": bool(row.get("stream")),
        "attempts": row.get("attempts") or 0,
        "error": row.get("error_type") or "",
        "limit": obs.limit,
    }


def message(line: dict[str, Any]) -> str:
    """The human-readable summary: endpoint, model -> provider, status, time."""
    to = f" -> {line['provider']}" if line["provider"] else ""
    error = f" {line['error']}" if line["error"] else ""
    return f"{line['endpoint']} {line['model'] or '-'}{to} {line['status']}{error} {line['latency_ms']}ms"


def emit(batch: Sequence[Observation]) -> None:
    if not logger.isEnabledFor(logging.INFO):
        return
    for obs in batch:
        if obs.quiet:
            continue
        line = fields(obs)
        logger.info(message(line), extra={"gateway_call": line})
