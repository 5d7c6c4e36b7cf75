"""Sending a call upstream: deployments in order, fallbacks before the first byte, errors mapped."""

from __future__ import annotations

from collections.abc import Callable

from gateway.inference import transport as upstream
from gateway.provider_keys import missing_key_error
from gateway.routing.registry import Route
from gateway.usage.call import Call
from providers.base import Adapter, ProviderError, UpstreamRequest
from providers.registry import adapter_for

# Upstream answers worth trying the next deployment for: their own trouble, not the request's.
RETRY_STATUSES = frozenset({401, 403, 408, 409, 429, 500, 502, 503, 504})
ERROR_BODY_LIMIT = 1 << 20


async def send_with_fallbacks(
    call: Call, routes: list[Route], build: Callable[[Adapter, Route], UpstreamRequest]
) -> tuple[Adapter, UpstreamRequest, upstream.UpstreamResponse]:
    """The first successful (2xx) upstream response, with the adapter and request that got it,
    trying each deployment in turn."""
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
            response = await transport.send(
                request, upstream.Timeouts(route.account.connect_timeout, route.account.read_timeout)
            )
        except upstream.UpstreamUnavailable as exc:
            last_error = ProviderError(504 if exc.timeout else 502, f"{exc} (provider account '{route.account.name}')",
                                       "upstream_error", "upstream_timeout" if exc.timeout else "upstream_unreachable")
            call.upstream_failed("timeout" if exc.timeout else "unreachable", last_error)
            continue
        if response.status < 400:
            return adapter, request, response
        try:  # an error body is read only for its message: a little of it is enough
            body = await response.read(limit=ERROR_BODY_LIMIT)
        except (ProviderError, upstream.UpstreamUnavailable):
            body = b""
        last_error = adapter.error(response.status, body, response.headers.get("retry-after"))
        call.upstream_failed(str(response.status), last_error)
        if response.status not in RETRY_STATUSES:
            break
    assert last_error is not None
    raise last_error
