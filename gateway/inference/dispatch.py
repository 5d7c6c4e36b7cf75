"""Sending a call upstream: its targets (deployments, then fallback models) in order, those in cooldown
last, moving on before the first byte reaches the client; errors mapped.

Each attempt is counted on the call (``attempts``). An attempt fails, and counts towards its
deployment's cooldown (gateway/routing/cooldowns.py), when the upstream cannot be reached or does not
answer in time, answers a status worth trying the next deployment for (``RETRY_STATUSES``, 5xx), or
sends an answer ``accept`` cannot read (a 5xx ``ProviderError``, e.g. ``upstream_malformed``). Another
status (the request's own fault, e.g. 400) ends the attempts. No new attempt starts past
``MAX_ATTEMPTS`` or ``FALLBACK_DEADLINE_SECONDS`` after the first; the client gets the last error.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway import redaction
from gateway.conf import gateway_settings
from gateway.inference import transport as upstream
from gateway.provider_keys import missing_key_error
from gateway.routing.cooldowns import cooldowns
from gateway.routing.fallbacks import Target
from gateway.usage.call import Call
from providers.base import Adapter, ProviderError, UpstreamRequest
from providers.registry import adapter_for

T = TypeVar("T")

# Upstream answers worth trying the next deployment for: their own trouble, not the request's.
RETRY_STATUSES = frozenset({401, 403, 408, 409, 429, 500, 502, 503, 504})
ERROR_BODY_LIMIT = 1 << 20

# What makes a 2xx response an answer, inside the attempt: e.g. reading and translating its whole body,
# or a stream's first event. A ProviderError or UpstreamUnavailable it raises fails the attempt.
Accept = Callable[[Adapter, UpstreamRequest, upstream.UpstreamResponse], Awaitable[T]]


def is_upstream_failure(status: int) -> bool:
    return status in RETRY_STATUSES or status >= 500


def unavailable(exc: upstream.UpstreamUnavailable, account: str) -> ProviderError:
    return ProviderError(504 if exc.timeout else 502, f"{exc} (provider account '{account}')",
                         "upstream_error", "upstream_timeout" if exc.timeout else "upstream_unreachable")


async def failed(call: Call, target: Target, error: ProviderError, retry_after: str | None = None) -> None:
    """Count a failed attempt: on the call (its deployment's account gets it as its last error) and
    towards the deployment's cooldown."""
    reason = redaction.text(f"{error.status} {error.code or error.type}: {error.message}")
    call.failures.append((target.route.account.name, reason))
    await cooldowns.failed(target.key, target.route.cooldown, reason, retry_after)


async def send_with_fallbacks(call: Call, targets: list[Target], build: Callable[[Adapter, Target], UpstreamRequest],
                              accept: Accept[T], whole: bool = True) -> T:
    """What ``accept(adapter, request, response)`` makes of the first successful (2xx) upstream answer
    it can read. ``whole``: that is the whole answer, a success for its deployment's cooldown count
    (a stream's success is known only at its end: ``stream_ended``)."""
    last_error: ProviderError | None = None
    transport = upstream.current()
    started = time.monotonic()
    ordered = await cooldowns.order(targets, key=lambda target: target.key)
    for target in ordered[:max(1, gateway_settings.MAX_ATTEMPTS)]:
        if call.attempts and time.monotonic() - started >= gateway_settings.FALLBACK_DEADLINE_SECONDS:
            break
        call.attempts += 1
        call.serve(target.entry, target.route, target.model)
        route = target.route
        adapter = adapter_for(route.account)
        if (missing_key := missing_key_error(route.account, adapter.requires_api_key)) is not None:
            last_error = missing_key
            continue
        request = build(adapter, target)
        try:
            response = await transport.send(request, upstream.Timeouts.of(route.account))
        except upstream.UpstreamUnavailable as exc:
            last_error = unavailable(exc, route.account.name)
            call.upstream_failed("timeout" if exc.timeout else "unreachable", last_error)
            await failed(call, target, last_error)
            continue
        if response.status < 400:
            try:
                try:
                    accepted = await accept(adapter, request, response)
                except BaseException:
                    response.close()
                    raise
            except upstream.UpstreamUnavailable as exc:
                last_error = unavailable(exc, route.account.name)
                call.upstream_failed("timeout" if exc.timeout else "unreachable", last_error)
            except ProviderError as exc:
                if not is_upstream_failure(exc.status):
                    raise
                last_error = exc
                call.upstream_failed("malformed" if exc.code == "upstream_malformed" else str(exc.status), exc)
            else:
                if whole:
                    await cooldowns.succeeded(target.key)
                return accepted
            await failed(call, target, last_error)
            continue
        try:  # an error body is read only for its message: a little of it is enough
            body = await response.read(limit=ERROR_BODY_LIMIT)
        except (ProviderError, upstream.UpstreamUnavailable):
            body = b""
        retry_after = response.headers.get("retry-after")
        last_error = adapter.error(response.status, body, retry_after)
        call.upstream_failed(str(response.status), last_error)
        if response.status not in RETRY_STATUSES:
            break
        await failed(call, target, last_error, retry_after if response.status in (429, 503) else None)
    assert last_error is not None
    raise last_error
