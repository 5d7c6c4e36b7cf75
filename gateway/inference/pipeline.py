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
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from gateway.access.authentication import TokenInfo
from gateway.access.limits import LimitExceeded
from gateway.access.policy import Grant
from gateway.conf import gateway_settings
from gateway.edge.http import Request, Response
from gateway.edge.shutdown import drain
from gateway.edge.views import HotView
from gateway.errors import GatewayError, shutting_down
from gateway.inference import dispatch, validation
from gateway.inference.dispatch import send_with_fallbacks
from gateway.inference.operations import Operation
from gateway.inference.relay import OpenedStream, open_stream, read, relay_stream
from gateway.inference.transport import UpstreamResponse
from gateway.routing import fallbacks
from gateway.routing import registry as routing
from gateway.routing.cooldowns import cooldowns
from gateway.routing.fallbacks import Target
from gateway.routing.registry import Entry, Route
from gateway.usage.call import Call
from providers.base import Adapter, ProviderError, UpstreamRequest, Usage
from providers.registry import adapter_for

T = TypeVar("T")
logger = logging.getLogger(__name__)


def session_id(request: Request) -> str:
    return request.headers.get("x-session-id") or request.cookie("session_id") or ""


async def resolve(call: Call, body: dict[str, Any], token: TokenInfo) -> tuple[Entry, list[Route], list[Target]]:
    """The registry entry and deployments for the body's model (and optional ``provider``), and every
    attempt the request may make (those deployments, then its fallback models')."""
    registry = await routing.current()
    model = validation.optional_string(body, "model")
    call.requested_model = model or (registry.default.name if registry.default else "")
    provider = validation.optional_string(body, "provider")
    model, entry, routes = routing.choose(registry, model, provider, token)
    call.entry = entry
    attempts = fallbacks.targets(registry, entry, model, routes, provider, token)
    if not attempts:
        raise GatewayError(503, f"The model `{model}` has no active deployment.", "server_error", "no_deployment")
    return entry, routes, attempts


async def answer_within_deadline(call: Call, targets: list[Target], build: Callable[[Adapter, Target], UpstreamRequest],
                                 translate: Callable[[Adapter, UpstreamRequest, bytes], T]) -> T:
    """A non-streamed answer, whole and translated: every attempt and the read of its body share one
    deadline; an answer that cannot be read (or translated) is a failed attempt, and the next is tried."""
    deadline = gateway_settings.REQUEST_DEADLINE_SECONDS

    async def accept(adapter: Adapter, sent: UpstreamRequest, upstream_response: UpstreamResponse) -> T:
        raw = await upstream_response.read()
        return read(lambda data: translate(adapter, sent, data), raw)

    try:
        async with asyncio.timeout(deadline):
            return await send_with_fallbacks(call, targets, build, accept)
    except TimeoutError:
        raise ProviderError(504, f"The upstream did not finish its answer within {deadline:g} s "
                            "(GATEWAY_REQUEST_DEADLINE_SECONDS).", "upstream_error", "upstream_timeout") from None


# Errors a stream can end with that are its upstream's failure (a client that left is not).
STREAM_FAILURES = frozenset({"upstream_malformed", "upstream_stream_failed", "stream_incomplete",
                             "upstream_response_too_large", "upstream_timeout"})


async def stream_ended(call: Call) -> None:
    """A stream that broke after its first byte cannot move to another deployment; its deployment's
    failure still counts towards its cooldown. One that ended well is its deployment's success."""
    error, route = call.error, call.route
    if route is None or call.entry is None:
        return
    target = Target(call.entry, call.served_model, route)
    if error is None:
        await cooldowns.succeeded(target.key)
    elif error.code in STREAM_FAILURES or error.status >= 500:
        await dispatch.failed(call, target, error)


def partial_usage(operation: Operation, call: Call, client_body: dict[str, Any]) -> Callable[[], Usage] | None:
    """For a stream that failed or lost its client midway without reporting usage: an estimate of its
    prompt and of the text relayed until then (what the upstream generated), for settling limits."""
    if call.usage is not None or not call.response_body or operation.estimate is None:
        return None
    estimate = operation.estimate
    model = call.upstream_model()
    return lambda: estimate(client_body, call.response_body, model)


async def estimate_usage(operation: Operation, call: Call, client_body: dict[str, Any]) -> None:
    """The usage of a call whose provider reported none, estimated from the prompt and the answer; for
    a stream that failed or lost its client midway, from the text relayed until then (a provider's
    counts given early, such as a prompt count at the start, are kept; its output count stops short)."""
    if call.logged or call.route is None or operation.estimate is None:
        return
    if call.error is None and call.usage is not None or call.error is not None and not call.response_body:
        return
    try:  # off the event loop: the first use of an encoding in a process takes a moment to load
        estimated = await asyncio.to_thread(operation.estimate, client_body, call.response_body,
                                            call.upstream_model())
    except Exception:
        logger.warning("could not estimate the usage of request %s", call.request_id, exc_info=True)
        return
    reported = call.usage
    if reported is not None:
        if reported.completion_tokens >= estimated.completion_tokens and reported.prompt_tokens:
            return
        prompt = reported.prompt_tokens or estimated.prompt_tokens
        completion = max(reported.completion_tokens, estimated.completion_tokens)
        estimated = Usage(prompt, completion, prompt + completion, reported.cached_tokens)
    call.usage, call.usage_estimated = estimated, True


def answer_locally(operation: Operation, call: Call, targets: list[Target], client_body: dict[str, Any]) -> list[Target]:
    """The targets to send to; none when the first is a deployment the gateway answers itself (the
    answer is then the call's response body and usage)."""
    assert operation.answers_locally is not None and operation.local is not None
    first = targets[0]
    if operation.answers_locally(adapter_for(first.route.account)):
        call.serve(first.entry, first.route, first.model)
        result = operation.local(client_body, first.upstream_model)
        call.usage, call.response_body = result.usage, result.body
        call.log()
        return []
    return [target for target in targets if not operation.answers_locally(adapter_for(target.route.account))]


async def handle(operation: Operation, view: HotView, request: Request, response: Response) -> None:
    """Serve one inference request; its log row is queued whatever happens (a refused token too)."""
    call = Call(operation.endpoint, request.request_id, session_id(request), request_body=request.body)
    limiters = getattr(view, "limiters", ())
    grants: list[tuple[Any, Grant]] = []
    relayed = False
    client_body: dict[str, Any] = {}
    try:
        await view.initial(request)
        call.token = request.user
        body = validation.json_object(request.json())
        operation.validate(body)
        prepared = await operation.prepare(body, call.token) if operation.prepare is not None else None
        stream, include_usage = validation.stream_flags(body) if operation.stream else (False, False)
        call.stream = stream
        entry, routes, targets = await resolve(call, body, call.token)
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

        def build(adapter: Adapter, target: Target) -> UpstreamRequest:
            if operation.client_request is not None:
                return operation.client_request(adapter, client_body, request.body, target.upstream_model,
                                                target.entry, request.headers)
            return operation.request(adapter, body, target.upstream_model, target.entry)

        if operation.answers_locally is not None and operation.local is not None:
            targets = answer_locally(operation, call, targets, client_body)
            if not targets:
                await response.json(200, call.response_body)
                return
        async def opened(adapter: Adapter, sent: UpstreamRequest, upstream: UpstreamResponse) -> OpenedStream:
            assert operation.stream is not None
            return await open_stream(operation.stream(adapter, model, include_usage, client_body, sent.context),
                                     upstream)

        # The client leaving cancels the upstream request where it waits (and is logged as 499).
        async with response.cancelled_on_disconnect():
            if stream:
                opened_stream = await send_with_fallbacks(call, targets, build, opened, whole=False)
                keep = operation.keep
                translator = opened_stream.translator
                before_end = None if keep is None else (
                    lambda: keep(call, client_body, prepared, getattr(translator, "answer", None)))
                await relay_stream(call, response, opened_stream, keep=operation.estimate is not None,
                                   estimate=lambda: estimate_usage(operation, call, client_body),
                                   before_end=before_end)
                relayed = True
            else:
                result = await answer_within_deadline(
                    call, targets, build,
                    lambda adapter, sent, data: operation.result(adapter, data, model, client_body, sent.context))
        if not stream:
            call.usage = result.usage
            call.response_body = result.body
            if operation.keep is not None:
                await operation.keep(call, client_body, prepared, result.body)
            if call.usage is not None or operation.estimate is None:
                call.log()  # queued before the answer leaves: a client that has it will find the row
            await response.json(200, result.body)
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
        try:
            await estimate_usage(operation, call, client_body)
        finally:
            call.log()
            for limiter, grant in grants:
                limiter.settle(grant, call, partial_usage(operation, call, client_body))
            if relayed:  # (after its row is queued: counting it may wait for Redis)
                await stream_ended(call)
