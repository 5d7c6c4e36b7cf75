"""Anthropic's Messages API (``/v1/messages``) for every provider kind: which way a request goes.

An adapter whose upstream speaks it (``Adapter.speaks_messages``) gets the client's bytes and version
headers as they are (providers/messages/passthrough.py); every other adapter gets a chat completion
body (providers/messages/request.py) through its own ``chat_request``, and its chat answers come
back as Messages answers (providers/messages/response.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from providers.base import Adapter, ChatResult, StreamTranslator, UpstreamRequest
from providers.messages.request import chat_body, chat_messages, chat_tools
from providers.messages.response import MessagesStream, message

__all__ = ["chat_messages", "chat_tools", "count_tokens_request", "request", "result", "stream"]

# A field of the gateway's own (which deployment to use) that the upstream must not see.
_GATEWAY_FIELDS = ("provider",)


def _forwarded_bytes(raw: bytes, client_body: dict[str, Any]) -> bytes:
    """The client's bytes; re-serialized only when they carry a field of the gateway's own."""
    if any(name in client_body for name in _GATEWAY_FIELDS):
        return orjson.dumps({k: v for k, v in client_body.items() if k not in _GATEWAY_FIELDS})
    return raw


def request(adapter: Adapter, client_body: dict[str, Any], raw: bytes, upstream_model: str,
            client_headers: Mapping[str, str], max_output_tokens: int | None = None) -> UpstreamRequest:
    """The upstream request for a Messages body as the client sent it (``client_body`` parsed, ``raw`` its bytes)."""
    if adapter.speaks_messages:
        return adapter.messages_request(  # type: ignore[attr-defined]
            _forwarded_bytes(raw, client_body), client_body, upstream_model, client_headers)
    body = {k: v for k, v in client_body.items() if k not in ("model", *_GATEWAY_FIELDS)}
    maps_top_k = "top_k" in adapter.chat_parameters.mapped
    upstream = adapter.chat_request(chat_body(body, adapter.label, maps_top_k), upstream_model, max_output_tokens)
    upstream.context = {**upstream.context, "messages_stream": bool(body.get("stream"))}
    return upstream


def result(adapter: Adapter, raw: bytes, public_model: str, context: Mapping[str, Any]) -> ChatResult:
    """A whole Messages answer: the upstream's bytes as they are, or the translated chat answer."""
    if adapter.speaks_messages:
        return adapter.messages_result(raw)  # type: ignore[attr-defined]
    chat = adapter.chat_result(raw, public_model, context)
    return ChatResult(message(chat.body, public_model, chat.usage), chat.usage)


def stream(adapter: Adapter, public_model: str, context: Mapping[str, Any]) -> StreamTranslator:
    """A translator to Messages stream events: the upstream's own, or the translated chat stream."""
    if adapter.speaks_messages:
        return adapter.messages_stream()  # type: ignore[attr-defined]
    return MessagesStream(adapter.chat_stream(public_model, True, context), public_model)


def count_tokens_request(adapter: Adapter, client_body: dict[str, Any], raw: bytes, upstream_model: str,
                         client_headers: Mapping[str, str]) -> UpstreamRequest | None:
    """The upstream's own token count request, or None when the gateway must estimate the count itself."""
    if not adapter.speaks_messages:
        return None
    return adapter.count_tokens_request(  # type: ignore[attr-defined]
        _forwarded_bytes(raw, client_body), client_body, upstream_model, client_headers)
