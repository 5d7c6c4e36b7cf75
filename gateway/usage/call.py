"""One /v1 call as the request log sees it: who, what, where it went, what it cost, how long."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.utils import timezone

from gateway import redaction
from gateway.access.authentication import TokenInfo
from gateway.conf import gateway_settings
from gateway.routing.registry import Entry, Route
from gateway.usage.log_writer import writer
from providers.base import ProviderError, Usage

SESSION_ID_MAX = 128


@dataclass
class Call:
    endpoint: str
    request_id: str
    session_id: str = ""
    started: float = field(default_factory=time.perf_counter)
    created_at: Any = field(default_factory=timezone.now)
    token: TokenInfo | None = None
    requested_model: str = ""
    entry: Entry | None = None
    route: Route | None = None
    stream: bool = False
    attempts: int = 0
    status: int = 200
    error: ProviderError | None = None
    usage: Usage | None = None
    usage_estimated: bool = False
    ttft: float | None = None
    logged: bool = False
    request_body: bytes = b""
    response_body: bytes = b""

    def first_token(self) -> None:
        if self.ttft is None:
            self.ttft = time.perf_counter()

    def fail(self, error: ProviderError) -> None:
        self.status, self.error = error.status, error

    def upstream_model(self) -> str:
        """The upstream model id that served the call (the requested name before one was chosen)."""
        return self.route.model_for(self.requested_model) if self.route else self.requested_model

    def cost(self) -> Decimal | None:
        """USD from the usage (reported, or estimated), priced for the upstream model that served it;
        None when it used tokens whose price neither the registry entry nor the price list knows."""
        if self.entry is None or self.usage is None:
            return Decimal(0) if self.usage is None else None
        return self.entry.cost(self.usage, self.upstream_model())

    def row(self) -> dict[str, Any]:
        usage = self.usage or Usage()
        token = self.token
        route = self.route
        row = {
            "created_at": self.created_at,
            "request_id": self.request_id,
            "token_id": token.id if token else None,
            "token_name": token.name if token else "",
            "team_id": token.team_id if token else None,
            "session_id": self.session_id[:SESSION_ID_MAX],
            "endpoint": self.endpoint,
            "requested_model": self.requested_model[:200],
            "resolved_model": self.upstream_model()[:200] if route else "",
            "provider_kind": route.account.kind if route else "",
            "provider_account": route.account.name if route else "",
            "status_code": self.status,
            "error_type": (self.error.code or self.error.type)[:64] if self.error else "",
            "error_message": redaction.text(self.error.message)[:500] if self.error else "",
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "usage_estimated": self.usage_estimated,
            "cost": self.cost(),
            "latency_ms": int((time.perf_counter() - self.started) * 1000),
            "ttft_ms": int((self.ttft - self.started) * 1000) if self.ttft is not None else None,
            "stream": self.stream,
            "attempts": self.attempts,
        }
        if gateway_settings.LOG_BODIES:
            row["request_body"] = redaction.text(self.request_body.decode("utf-8", "replace"))
            row["response_body"] = redaction.text(self.response_body.decode("utf-8", "replace"))
        return row

    def log(self) -> None:
        """Queue the row, once (it is queued before the client's last byte where usage is known)."""
        if not self.logged:
            self.logged = True
            writer.enqueue(self.row())
