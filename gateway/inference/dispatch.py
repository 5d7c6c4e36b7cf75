"""Sending a call upstream: deployments in order, fallbacks before the first byte, errors mapped."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway.inference import transport as upstream
from gateway.provider_keys import missing_key_error
from gateway.routing.registry import Route
from gateway.usage.call import Call
from providers.base import Account, Adapter, ProviderError, UpstreamRequest
from providers.registry import adapter_for

# Upstream answers worth trying the next deployment for: their own trouble, not the request's.
RETRY_STATUSES = frozenset({401, 403, 408, 409, 429, 500, 502, 503, 504})
ERROR_BODY_LIMIT = 1 << 20

T = TypeVar("T")
# What makes a 2xx response an answer, inside the attempt: e.g. reading and translating its whole body,
# or a stream's first event. A ProviderError or UpstreamUnavailable it raises fails the attempt.
Accept = Callable[[Adapter, UpstreamRequest, upstream.UpstreamResponse], Awaitable[T]]


async def _as_is(adapter: Adapter, request: UpstreamRequest, response: upstream.UpstreamResponse
                 ) -> upstream.UpstreamResponse:
    return response


def unavailable(exc: upstream.UpstreamUnavailable, account: Account) -> ProviderError:
    """A 504 (timed out) or 502 (unreachable, or the connection broke) naming the account."""
    return ProviderError(504 if exc.timeout else 502, f"{exc} (provider account '{account.name}')",
                         "upstream_error", "upstream_timeout" if exc.timeout else "upstream_unreachable")


async def send_with_fallbacks(
    call: Call, routes: list[Route], build: Callable[[Adapter, Route], UpstreamRequest],
    accept: Accept[T] = _as_is,  # type: ignore[assignment]
) -> tuple[Adapter, UpstreamRequest, T]:
    """The first successful (2xx, and accepted) upstream answer, with the adapter and request that got
    it, trying each deployment in turn."""
    last_error: ProviderError | None = None
    transport = upstream.current()
    for route in routes:
        call.attempts += 1
        call.route = route
        adapter = adapter_for(route.account)
        if (missing_key := missing_key_error(route.account, adapter.requires_api_key)) is not None:
            last_error = missing_key
            continue
        request = build(adapter, route)
        try:
            response = await transport.send(request, upstream.Timeouts.of(route.account))
            if response.status < 400:
                try:
                    return adapter, request, await accept(adapter, request, response)
                except BaseException:
                    response.close()
                    raise
        except upstream.UpstreamUnavailable as exc:
            last_error = unavailable(exc, route.account)
            continue
        except ProviderError as exc:  # the 2xx answer was not one (malformed, too large, ...)
            last_error = exc
            if exc.status not in RETRY_STATUSES:
                break
            continue
        try:  # an error body is read only for its message: a little of it is enough
            body = await response.read(limit=ERROR_BODY_LIMIT)
        except (ProviderError, upstream.UpstreamUnavailable):
            body = b""
        last_error = adapter.error(response.status, body, response.headers.get("retry-after"))
        if response.status not in RETRY_STATUSES:
            break
    assert last_error is not None
    raise last_error
