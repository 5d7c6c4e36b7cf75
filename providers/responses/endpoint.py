"""How one request is served: passed through when the adapter speaks the Responses API, else through chat."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from providers.base import Adapter, ChatResult, StreamTranslator, UpstreamRequest
from providers.responses import passthrough
from providers.responses.request import chat_body
from providers.responses.response import from_chat
from providers.responses.stream import ResponsesStream

# Hints Responses clients send by habit (Codex sends ``reasoning.effort`` with every request): where the
# provider's chat interface has no such parameter at all, they are left out instead of refused.
HINTS = ("reasoning_effort", "verbosity")


def native(adapter: Adapter) -> bool:
    serves = getattr(adapter, "serves_responses", None)
    return bool(serves and serves())


def upstream_request(adapter: Adapter, body: dict[str, Any], upstream_model: str,
                     max_output_tokens: int | None = None) -> UpstreamRequest:
    """The upstream request for a Responses body (its ``model`` already removed)."""
    if native(adapter):
        sent = adapter.responses_request(body, upstream_model)  # type: ignore[attr-defined]
        sent.context = {**sent.context, "responses": {"native": True}}
        return sent
    chat, context = chat_body(body, adapter.label)
    for name in HINTS:
        if name in chat and name in adapter.chat_parameters.refused:
            del chat[name]
    sent = adapter.chat_request(chat, upstream_model, max_output_tokens)
    sent.context = {**sent.context, "responses": context}
    return sent


def result(adapter: Adapter, body: bytes, public_model: str, request: dict[str, Any],
           context: Mapping[str, Any]) -> ChatResult:
    """The upstream's 2xx body as a ``response`` object plus its usage."""
    own = context.get("responses") or {}
    if own.get("native"):
        return passthrough.result(body, adapter.account.name, _previous(request))
    chat = adapter.chat_result(body, public_model, context)
    return ChatResult(from_chat(chat.body, chat.usage, request, own, public_model), chat.usage)


def stream(adapter: Adapter, public_model: str, request: dict[str, Any], context: Mapping[str, Any]
           ) -> StreamTranslator:
    """A translator from the upstream's stream to Responses API events."""
    own = context.get("responses") or {}
    if own.get("native"):
        return passthrough.PassthroughResponsesStream(_previous(request))
    return ResponsesStream(adapter.chat_stream(public_model, True, context), request, own, public_model)


def _previous(request: Mapping[str, Any]) -> str | None:
    previous = request.get("previous_response_id")
    return previous if isinstance(previous, str) and previous else None
