"""Anthropic answers -> OpenAI chat completions: whole (``completion``) or streamed (``AnthropicStream``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from providers.base import ProviderError, SSEBuffer, StreamTranslator, Usage
from providers.errors import reads_upstream

FINISH_REASONS = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
    "max_tokens": "length", "model_context_window_exceeded": "length",
    "tool_use": "tool_calls", "refusal": "content_filter",
}

# Anthropic error type -> (the HTTP status it stands for inside a 200 stream, OpenAI error type, code).
ERRORS: dict[str, tuple[int, str | None, str | None]] = {
    "invalid_request_error": (400, "invalid_request_error", None),
    "authentication_error": (401, None, None),
    "billing_error": (402, None, "upstream_billing"),
    "permission_error": (403, "permission_error", None),
    "not_found_error": (404, "invalid_request_error", "not_found"),
    "request_too_large": (413, "invalid_request_error", "request_too_large"),
    "rate_limit_error": (429, "rate_limit_error", None),
    "api_error": (500, None, None),
    "timeout_error": (504, None, "upstream_timeout"),
    "overloaded_error": (529, None, "upstream_overloaded"),
}


def _counts(usage: Any, into: dict[str, int] | None = None) -> dict[str, int]:
    counts = into if into is not None else {}
    if isinstance(usage, dict):
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens"):
            if isinstance(usage.get(key), int):
                counts[key] = usage[key]
    return counts


def gateway_usage(counts: dict[str, int]) -> Usage:
    """Prompt tokens are every input token: uncached, written to the cache and read from it (``cached_tokens``)."""
    prompt = sum(counts.get(k, 0) for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
    completion = counts.get("output_tokens", 0)
    return Usage(prompt, completion, prompt + completion, counts.get("cache_read_input_tokens", 0))


def openai_usage(counts: dict[str, int]) -> dict[str, Any]:
    usage = gateway_usage(counts)
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "prompt_tokens_details": {"cached_tokens": counts.get("cache_read_input_tokens", 0)}}


def finish_reason(stop_reason: Any) -> str:
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


class AnthropicStream(StreamTranslator):
    """Anthropic's named SSE events in, OpenAI ``chat.completion.chunk`` events out.

    Tool calls are numbered 0..k-1 in the order they start, not by Anthropic's block index.
    An ``error`` event becomes a ProviderError (``to_error``: the adapter's translation of an error
    body with the status it stands for), raised once the bytes before it are handed on.
    """

    def __init__(self, public_model: str, include_usage: bool,
                 to_error: Callable[[int, bytes], ProviderError]) -> None:
        self._to_error = to_error
        self._base = {"id": "chatcmpl-anthropic", "object": "chat.completion.chunk", "created": int(time.time()),
                      "model": public_model}
        self._include_usage = include_usage
        self._sse = SSEBuffer()
        self._tools: dict[Any, int] = {}
        self._counts: dict[str, int] = {}
        self._finish = "stop"
        self._error: ProviderError | None = None

    def feed(self, data: bytes) -> bytes:
        self._raise_pending()
        return self._translate(self._sse.events(data))

    def close(self) -> bytes:
        self._raise_pending()
        rest = self._sse.rest()
        out = self._translate([rest]) if rest else b""
        if not out:
            self._raise_pending()
        return out

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _translate(self, events: list[bytes]) -> bytes:
        out = []
        for event in events:
            if self.finished or self._error is not None:
                break
            if event.strip():
                out.append(self._event(event))
        if not any(out):
            self._raise_pending()
        return b"".join(out)

    @reads_upstream
    def _event(self, event: bytes) -> bytes:
        name, data = "", []
        for line in event.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode("utf-8", "replace")
            elif line.startswith(b"data:"):
                data.append(line[5:].removeprefix(b" "))
        if not data:
            return b""
        try:
            payload = orjson.loads(b"\n".join(data))
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):
            raise ProviderError(502, "The upstream sent a stream event that is not JSON.", "upstream_error",
                                "upstream_bad_stream")
        kind = payload.get("type") or name
        handler = getattr(self, f"_on_{kind}", None) if isinstance(kind, str) and kind.isidentifier() else None
        return handler(payload) if handler else b""  # ping and event types added later are ignored

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = {**self._base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if self._include_usage:
            chunk["usage"] = None
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def _take_usage(self, usage: Any) -> None:
        _counts(usage, self._counts)
        self.usage = gateway_usage(self._counts)

    def _on_message_start(self, payload: dict[str, Any]) -> bytes:
        message = payload.get("message") or {}
        if isinstance(message.get("id"), str):
            self._base["id"] = message["id"]
        self._take_usage(message.get("usage"))
        return self._chunk({"role": "assistant", "content": ""})

    def _on_content_block_start(self, payload: dict[str, Any]) -> bytes:
        block = payload.get("content_block") or {}
        if block.get("type") == "text" and block.get("text"):
            self.first_token_seen = True
            return self._chunk({"content": block["text"]})
        if block.get("type") == "tool_use":
            index = self._tools[payload.get("index")] = len(self._tools)
            self.first_token_seen = True
            return self._chunk({"tool_calls": [{"index": index, "id": block.get("id", ""), "type": "function",
                                                "function": {"name": block.get("name", ""), "arguments": ""}}]})
        return b""

    def _on_content_block_delta(self, payload: dict[str, Any]) -> bytes:
        delta = payload.get("delta") or {}
        if delta.get("type") == "text_delta" and delta.get("text"):
            self.first_token_seen = True
            return self._chunk({"content": delta["text"]})
        index = self._tools.get(payload.get("index"))
        if delta.get("type") == "input_json_delta" and delta.get("partial_json") and index is not None:
            return self._chunk({"tool_calls": [{"index": index, "function": {"arguments": delta["partial_json"]}}]})
        return b""  # thinking, signature and citation deltas have no OpenAI counterpart

    def _on_message_delta(self, payload: dict[str, Any]) -> bytes:
        stop_reason = (payload.get("delta") or {}).get("stop_reason")
        if stop_reason:
            self._finish = finish_reason(stop_reason)
        self._take_usage(payload.get("usage"))  # cumulative counts: the last one wins
        return b""

    def _on_message_stop(self, payload: dict[str, Any]) -> bytes:
        self.finished = True
        out = self._chunk({}, self._finish)
        if self._include_usage:
            usage_chunk = {**self._base, "choices": [], "usage": openai_usage(self._counts)}
            out += b"data: " + orjson.dumps(usage_chunk) + b"\n\n"
        return out + b"data: [DONE]\n\n"

    def _on_error(self, payload: dict[str, Any]) -> bytes:
        error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
        status = ERRORS.get(error.get("type"), (502,))[0]
        self._error = self._to_error(status, orjson.dumps(payload))
        return b""


def completion(data: Any, public_model: str, account: str) -> tuple[dict[str, Any], Usage]:
    """An OpenAI ``chat.completion`` for an Anthropic message (parsed JSON), and its usage; else a 502."""
    if not isinstance(data, dict) or data.get("type") != "message" or not isinstance(data.get("content"), list):
        raise ProviderError(502, f"The upstream '{account}' returned a response that is not an "
                            "Anthropic message.", "upstream_error", "upstream_bad_response")
    blocks = [b for b in data["content"] if isinstance(b, dict)]
    text = "".join(str(b.get("text") or "") for b in blocks if b.get("type") == "text")
    tool_calls = [{"id": b.get("id", ""), "type": "function",
                   "function": {"name": b.get("name", ""), "arguments": orjson.dumps(b.get("input") or {}).decode()}}
                  for b in blocks if b.get("type") == "tool_use"]
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not tool_calls else None,
                               "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    counts = _counts(data.get("usage"))
    document = {
        "id": str(data.get("id") or "chatcmpl-anthropic"), "object": "chat.completion", "created": int(time.time()),
        "model": public_model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": finish_reason(data.get("stop_reason"))}],
        "usage": openai_usage(counts),
    }
    return document, gateway_usage(counts)
