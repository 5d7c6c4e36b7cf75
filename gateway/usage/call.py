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
from gateway.usage.clean import clean_row, clean_text
from gateway.usage.log_writer import writer
from gateway.usage.metrics import Observation
from gateway.usage.observer import observer
from providers.base import ProviderError, Usage


def _keeps_bodies(mode: str | bool, status: int) -> bool:
    """LOG_BODIES: "all" (or True), "errors" (failed requests only), "off" (or False; and any other
    value, which only code can set: proxy_site/settings.py refuses it in the environment)."""
    if mode is True or mode == "all":
        return True
    return mode == "errors" and status >= 400


# The gateway's own codes for an upstream's trouble after it was reached (a broken stream, an answer
# that could not be read, the deadline), as the causes gateway_upstream_errors_total counts.
UPSTREAM_CAUSES = {"upstream_timeout": "timeout", "upstream_unreachable": "unreachable",
                   "upstream_malformed": "malformed", "stream_incomplete": "stream_failed",
                   "upstream_stream_failed": "stream_failed"}


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
    # (provider account, cause) of each failed upstream attempt, for the metrics; None: none failed.
    upstream_errors: list[tuple[str, str]] | None = None
    _upstream_error: ProviderError | None = None  # the last one counted (not counted again by fail())
    # The name the answering entry was asked for: the requested model, or a fallback entry's name.
    served_model: str = ""
    # Each failed attempt's provider account and error, in order (each account's last error).
    failures: list[tuple[str, str]] = field(default_factory=list)

    def serve(self, entry: Entry, route: Route, model: str) -> None:
        """The deployment being tried (the one that answered, once it has)."""
        self.entry, self.route, self.served_model = entry, route, model

    def first_token(self) -> None:
        if self.ttft is None:
            self.ttft = time.perf_counter()

    def fail(self, error: ProviderError) -> None:
        self.status, self.error = error.status, error
        if error is not self._upstream_error and (cause := UPSTREAM_CAUSES.get(error.code or "")):
            self.upstream_failed(cause, error)

    def upstream_failed(self, cause: str, error: ProviderError | None = None) -> None:
        """Count a failed attempt at the current deployment: ``cause`` is the upstream's HTTP status,
        or timeout, unreachable, malformed, stream_failed (gateway/usage/metrics.py)."""
        if self.upstream_errors is None:
            self.upstream_errors = []
        self.upstream_errors.append((self.route.account.name if self.route else "", cause))
        self._upstream_error = error

    def upstream_model(self) -> str:
        """The upstream model id that served the call (the requested name before one was chosen)."""
        return self.route.model_for(self.served_model or self.requested_model) if self.route else self.requested_model

    def cost(self) -> Decimal | None:
        """USD from the usage (reported, or estimated), priced for the upstream model that served it;
        None when it used tokens whose price neither the registry entry nor the price list knows."""
        if self.entry is None or self.usage is None:
            return Decimal(0) if self.usage is None else None
        return self.entry.cost(self.usage, self.upstream_model())

    def row(self) -> dict[str, Any]:
        """The log row, every value fitting its column (gateway/usage/clean.py)."""
        usage = self.usage or Usage()
        token = self.token
        route = self.route
        row = {
            "created_at": self.created_at,
            "request_id": self.request_id,
            "token_id": token.id if token else None,
            "token_name": token.name if token else "",
            "team_id": token.team_id if token else None,
            "session_id": self.session_id,
            "endpoint": self.endpoint,
            "requested_model": self.requested_model,
            "resolved_model": self.upstream_model() if route else "",
            "provider_kind": route.account.kind if route else "",
            "provider_account": route.account.name if route else "",
            "status_code": self.status,
            # (upstream texts and codes may quote a provider key)
            "error_type": redaction.text(self.error.code or self.error.type) if self.error else "",
            "error_message": redaction.text(self.error.message) if self.error else "",
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
        if self.failures:  # (not a column: the log writer stamps these accounts' last error)
            row["account_failures"] = [(name, clean_text(message, 500)) for name, message in self.failures]
        if _keeps_bodies(gateway_settings.LOG_BODIES, self.status):
            row["request_body"] = redaction.text(self.request_body.decode("utf-8", "replace"))
            row["response_body"] = redaction.text(self.response_body.decode("utf-8", "replace"))
        # Client text (model, session id, errors quoting them, bodies) and upstream numbers, made to
        # fit their columns: one value the database refuses must not fail the writer's batch.
        return clean_row(row)

    def auth_failed(self) -> bool:
        """A 401 from the token check (no token was accepted), as opposed to one from upstream."""
        return self.status == 401 and self.token is None

    def log(self) -> None:
        """Queue the row, once (it is queued before the client's last byte where usage is known).
        A failed authentication past the minute's quota is only counted (``admit_auth_failure``)."""
        if not self.logged:
            self.logged = True
            observe = observer.wanted
            if self.auth_failed() and not writer.admit_auth_failure(self):
                if observe:  # counted in the metrics, but without a log line either
                    observer.add(Observation(self.brief_row(), "", "", "", (), quiet=True))
                return
            row = self.row()
            writer.enqueue(row)
            if observe:
                observer.add(self.observation(row))

    def observation(self, row: dict[str, Any]) -> Observation:
        """What the metrics and the request's log line take from this call (gateway/usage/observer.py)."""
        return Observation(row, self.entry.name if self.entry else "", self.token.prefix if self.token else "",
                           getattr(self.error, "limit", ""), tuple(self.upstream_errors or ()))

    def brief_row(self) -> dict[str, Any]:
        """The few values the metrics need, for a failed authentication that gets no log row."""
        return {"created_at": self.created_at, "request_id": self.request_id, "endpoint": self.endpoint,
                "status_code": self.status, "latency_ms": int((time.perf_counter() - self.started) * 1000)}
