"""POST /v1/chat/completions on the hot path."""

from __future__ import annotations

from typing import Any

from gateway import routing, validation
from gateway.asgi import Request, Response
from gateway.authentication import TokenInfo, authenticate, raw_token_from
from gateway.calls import Call, error_event
from gateway.dispatch import send_with_fallbacks
from gateway.errors import GatewayError, invalid_request, model_not_allowed, model_not_found
from gateway.routing import Entry, Route
from gateway.upstream import UpstreamResponse, UpstreamUnavailable
from providers.base import Adapter, ProviderError


def session_id(request: Request) -> str:
    return request.headers.get("x-session-id") or request.cookie("session_id") or ""


async def resolve(call: Call, body: dict[str, Any], token: TokenInfo) -> tuple[Entry, list[Route]]:
    """The registry entry and deployments for the body's model (and optional ``provider``)."""
    registry = await routing.current()
    model = validation.optional_string(body, "model")
    if model is None:
        if registry.default is None:
            raise invalid_request("Missing required parameter: 'model'.", "model", "missing_required_parameter")
        model = registry.default.name
    call.requested_model = model
    provider = validation.optional_string(body, "provider")
    resolved = registry.resolve(model, provider)
    if resolved is None:
        if provider is not None and registry.candidates(model):
            raise invalid_request(f"No deployment of provider '{provider}' serves the model `{model}`.", "provider")
        raise model_not_found(model)
    entry, routes = resolved
    call.entry = entry
    if not token.allows(model, entry.name):
        raise model_not_allowed(model)
    if not routes:
        raise GatewayError(503, f"The model `{model}` has no active deployment.", "server_error", "no_deployment")
    return entry, routes


async def chat_completions(request: Request, response: Response) -> None:
    call = Call("chat.completions", request.request_id, session_id(request), request_body=request.body)
    try:
        call.token = await authenticate(raw_token_from(request.headers, request.query))
        body = validation.json_object(request.json())
        validation.chat_messages(body)
        stream, include_usage = validation.stream_flags(body)
        call.stream = stream
        entry, routes = await resolve(call, body, call.token)
        body.pop("model", None)
        body.pop("provider", None)
        model = call.requested_model
        adapter, upstream_response = await send_with_fallbacks(
            call, routes, lambda adapter, route: adapter.chat_request(body, route.model_for(model), entry.max_output_tokens)
        )
        if stream:
            await relay_stream(call, response, adapter, upstream_response, include_usage)
        else:
            result = adapter.chat_result(await upstream_response.read(), model)
            call.usage = result.usage
            call.response_body = result.body
            await response.json(200, result.body)
    except ProviderError as exc:
        call.fail(exc)
        raise
    finally:
        call.log()


async def relay_stream(
    call: Call, response: Response, adapter: Adapter, upstream_response: UpstreamResponse, include_usage: bool
) -> None:
    """Copy the upstream stream to the client as OpenAI SSE; a failure midway ends it with an error event."""
    translator = adapter.chat_stream(call.requested_model, include_usage)
    await response.start_stream()
    try:
        async for data in upstream_response.chunks():
            out = translator.feed(data)
            if out:
                if translator.first_token_seen:
                    call.first_token()
                await response.write(out)
        tail = translator.close()
        if tail:
            await response.write(tail)
        if not translator.finished:
            raise ProviderError(502, "The upstream ended the stream before it was complete.", "upstream_error",
                                "stream_incomplete")
    except (ProviderError, UpstreamUnavailable) as exc:
        error = exc if isinstance(exc, ProviderError) else ProviderError(
            504 if exc.timeout else 502, str(exc), "upstream_error", "upstream_stream_failed")
        call.fail(error)
        await response.write(error_event(error))
    except OSError:  # the client went away: stop reading the upstream
        call.fail(ProviderError(499, "The client closed the connection.", "client_closed"))
        return
    finally:
        call.usage = translator.usage
        upstream_response.close()
    await response.end()
