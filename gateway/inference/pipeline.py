"""One flow for every inference endpoint: authenticate, validate, route, send (with fallbacks),
answer whole or streamed, log. What differs per endpoint is an ``Operation`` (gateway/inference/operations.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.access.authentication import TokenInfo, authenticate, raw_token_from
from gateway.edge.app import Request, Response
from gateway.errors import GatewayError
from gateway.inference import validation
from gateway.inference.dispatch import send_with_fallbacks
from gateway.inference.transport import UpstreamResponse, UpstreamUnavailable
from gateway.routing import registry as routing
from gateway.routing.registry import Entry, Route
from gateway.usage.call import Call, error_event
from providers.base import Adapter, ChatResult, ProviderError, StreamTranslator, UpstreamRequest, Usage


@dataclass(frozen=True)
class Operation:
    endpoint: str  # as logged, e.g. "chat.completions"
    validate: Callable[[dict[str, Any]], None]
    request: Callable[[Adapter, dict[str, Any], str, Entry], UpstreamRequest]
    # The last argument of result and stream is the context of the request that was answered.
    result: Callable[[Adapter, bytes, str, dict[str, Any], Mapping[str, Any]], ChatResult]
    stream: Callable[[Adapter, str, bool, dict[str, Any], Mapping[str, Any]], StreamTranslator] | None = None
    # Usage to log when the provider reports none: (client body, answer bytes, model) -> Usage.
    estimate: Callable[[dict[str, Any], bytes, str], Usage] | None = None


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


async def handle(operation: Operation, request: Request, response: Response) -> None:
    call = Call(operation.endpoint, request.request_id, session_id(request), request_body=request.body)
    try:
        call.token = await authenticate(raw_token_from(request.headers, request.query))
        body = validation.json_object(request.json())
        operation.validate(body)
        stream, include_usage = validation.stream_flags(body) if operation.stream else (False, False)
        call.stream = stream
        entry, routes = await resolve(call, body, call.token)
        client_body = dict(body)
        body.pop("model", None)
        body.pop("provider", None)
        model = call.requested_model
        adapter, sent, upstream_response = await send_with_fallbacks(
            call, routes, lambda adapter, route: operation.request(adapter, body, route.model_for(model), entry)
        )
        if stream:
            translator = operation.stream(adapter, model, include_usage, client_body, sent.context)
            await relay_stream(call, response, translator, upstream_response, keep=operation.estimate is not None)
        else:
            result = operation.result(adapter, await upstream_response.read(), model, client_body, sent.context)
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
        raise
    finally:
        call.log()


# How much of a stream is kept to estimate its usage if the provider reports none.
KEEP_FOR_ESTIMATE = 1 << 20


async def relay_stream(call: Call, response: Response, translator: StreamTranslator,
                       upstream_response: UpstreamResponse, keep: bool = False) -> None:
    """Copy the upstream stream to the client as OpenAI SSE; a failure midway ends it with an error event.

    The log row is queued just before the stream's last bytes (``[DONE]`` or the error event) go
    out, so a client that has seen the end of its stream will find the row; only when the usage
    must be estimated (``keep``) is it queued afterwards, by ``handle``.
    """
    await response.start_stream()
    response.on_disconnect(upstream_response.close)  # a reasoning model may pause for minutes
    kept: list[bytes] = []
    size = 0

    def settle(log: bool = True) -> None:
        call.usage = translator.usage
        if call.usage is None and kept:
            call.response_body = b"".join(kept)
        if log and (call.usage is not None or not keep):
            call.log()

    try:
        async for data in upstream_response.chunks():
            out = translator.feed(data)
            if out:
                if translator.first_token_seen:
                    call.first_token()
                if keep and size < KEEP_FOR_ESTIMATE:
                    kept.append(out)
                    size += len(out)
                if translator.finished:
                    settle()
                await response.write(out)
        tail = translator.close()
        if translator.finished and not call.logged:
            settle()
        if tail:
            await response.write(tail)
        if not translator.finished:
            raise ProviderError(502, "The upstream ended the stream before it was complete.", "upstream_error",
                                "stream_incomplete")
    except (ProviderError, UpstreamUnavailable) as exc:
        if response.disconnected:  # the upstream was closed because the client left
            call.fail(ProviderError(499, "The client closed the connection.", "client_closed"))
            return
        error = exc if isinstance(exc, ProviderError) else ProviderError(
            504 if exc.timeout else 502, str(exc), "upstream_error", "upstream_stream_failed")
        call.fail(error)
        settle()
        await response.write(error_event(error))
    except OSError:  # the client went away: stop reading the upstream
        call.fail(ProviderError(499, "The client closed the connection.", "client_closed"))
        return
    finally:
        if not call.logged:
            settle(log=False)  # handle() logs it (after estimating the usage, or after the client left)
        upstream_response.close()
    await response.end()
