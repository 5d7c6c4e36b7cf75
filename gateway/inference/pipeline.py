"""One flow for every inference endpoint: the view's policies (authentication, throttles), validate,
route, check the limits, send (with fallbacks), answer whole or streamed, log, settle the limits.
What differs per endpoint is an ``Operation`` (gateway/inference/operations.py).

The limit policies (the view's ``limiters``, gateway/access/policy.py) run after routing, not in
``initial()``: a tpm limit or a budget needs the parsed body and the routed entry's prices and
max output tokens. Their ``check`` is the last step before anything goes upstream; their
``settle`` runs when the request is over, whatever happened (an upstream failure releases the
reservation, a stream settles when it ends or its client leaves).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gateway.access.authentication import TokenInfo
from gateway.access.limits import LimitExceeded
from gateway.access.policy import Grant
from gateway.conf import gateway_settings
from gateway.edge.http import Request, Response
from gateway.edge.shutdown import drain
from gateway.edge.views import HotView
from gateway.errors import GatewayError, shutting_down
from gateway.inference import validation
from gateway.inference.dispatch import send_with_fallbacks
from gateway.inference.operations import Operation
from gateway.inference.relay import read, relay_stream
from gateway.routing import registry as routing
from gateway.routing.registry import Entry, Route
from gateway.usage.call import Call
from providers.base import Adapter, ProviderError, UpstreamRequest, Usage


def session_id(request: Request) -> str:
    return request.headers.get("x-session-id") or request.cookie("session_id") or ""


async def resolve(call: Call, body: dict[str, Any], token: TokenInfo) -> tuple[Entry, list[Route]]:
    """The registry entry and deployments for the body's model (and optional ``provider``)."""
    registry = await routing.current()
    model = validation.optional_string(body, "model")
    call.requested_model = model or (registry.default.name if registry.default else "")
    model, entry, routes = routing.choose(registry, model, validation.optional_string(body, "provider"), token)
    call.entry = entry
    if not routes:
        raise GatewayError(503, f"The model `{model}` has no active deployment.", "server_error", "no_deployment")
    return entry, routes


async def answer_within_deadline(call: Call, routes: list[Route], build: Callable[[Adapter, Route], UpstreamRequest],
                                 ) -> tuple[Adapter, UpstreamRequest, bytes]:
    """A non-streamed answer, whole: every attempt and the read of the body share one deadline."""
    deadline = gateway_settings.REQUEST_DEADLINE_SECONDS
    try:
        async with asyncio.timeout(deadline):
            adapter, sent, upstream_response = await send_with_fallbacks(call, routes, build)
            return adapter, sent, await upstream_response.read()
    except TimeoutError:
        raise ProviderError(504, f"The upstream did not finish its answer within {deadline:g} s "
                            "(GATEWAY_REQUEST_DEADLINE_SECONDS).", "upstream_error", "upstream_timeout") from None


def partial_usage(operation: Operation, call: Call, client_body: dict[str, Any]) -> Callable[[], Usage] | None:
    """For a stream that failed or lost its client midway without reporting usage: an estimate of its
    prompt and of the text relayed until then (what the upstream generated), for settling limits."""
    if call.usage is not None or not call.response_body or operation.estimate is None:
        return None
    estimate = operation.estimate
    model = call.route.model_for(call.requested_model) if call.route else call.requested_model
    return lambda: estimate(client_body, call.response_body, model)


async def handle(operation: Operation, view: HotView, request: Request, response: Response) -> None:
    """Serve one inference request; its log row is queued whatever happens (a refused token too)."""
    call = Call(operation.endpoint, request.request_id, session_id(request), request_body=request.body)
    limiters = getattr(view, "limiters", ())
    grants: list[tuple[Any, Grant]] = []
    try:
        await view.initial(request)
        call.token = request.user
        body = validation.json_object(request.json())
        operation.validate(body)
        stream, include_usage = validation.stream_flags(body) if operation.stream else (False, False)
        call.stream = stream
        entry, routes = await resolve(call, body, call.token)
        client_body = dict(body)
        for limiter in limiters:
            grant = await limiter.check(request, body, entry, operation.generates,
                                        [route.model_for(call.requested_model) for route in routes])
            if grant is not None:
                grants.append((limiter, grant))
                response.headers.update(grant.headers)
        body.pop("model", None)
        body.pop("provider", None)
        model = call.requested_model

        def build(adapter: Adapter, route: Route) -> UpstreamRequest:
            return operation.request(adapter, body, route.model_for(model), entry)

        if stream:
            adapter, sent, upstream_response = await send_with_fallbacks(call, routes, build)
            translator = operation.stream(adapter, model, include_usage, client_body, sent.context)
            await relay_stream(call, response, translator, upstream_response, keep=operation.estimate is not None)
        else:
            adapter, sent, raw = await answer_within_deadline(call, routes, build)
            result = read(lambda data: operation.result(adapter, data, model, client_body, sent.context), raw)
            call.usage = result.usage
            call.response_body = result.body
            if call.usage is not None or operation.estimate is None:
                call.log()  # queued before the answer leaves: a client that has it will find the row
            await response.json(200, result.body)
        if call.usage is None and operation.estimate is not None and call.error is None:
            # Off the event loop: the first use of an encoding in a process takes a moment to load.
            model = call.route.model_for(call.requested_model) if call.route else call.requested_model
            call.usage = await asyncio.to_thread(operation.estimate, client_body, call.response_body, model)
            call.usage_estimated = True
    except ProviderError as exc:
        call.fail(exc)
        if call.token is not None and not grants and not isinstance(exc, LimitExceeded):
            for limiter in limiters:  # refused before the limits were checked: their headers still
                response.headers.update(await limiter.headers(request))
        raise
    except asyncio.CancelledError:
        if drain.cutting and not response.finished:  # the worker's grace period is over (gateway/edge/shutdown.py)
            call.fail(shutting_down())
        raise
    finally:
        call.log()
        for limiter, grant in grants:
            limiter.settle(grant, call, partial_usage(operation, call, client_body))


