"""Workers AI answers -> OpenAI chat completions, whole (``completion``) or streamed (``CloudflareStream``).

Answers come in Cloudflare's v4 envelope ``{"result": {...}, "success": true, "errors": [], "messages": []}``
and streams as ``data: {"response": "..."}`` events ending with ``data: [DONE]``; some models answer
in OpenAI's shape instead, which is read too. The native output has no finish reason, so "length"
is told from "stop" by the output limit the upstream applied.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from providers.base import Account, ProviderError, SSEBuffer, StreamTranslator, Usage, redact
from providers.cloudflare.request import arguments, call_id
from providers.errors import reads_upstream

WORKERS_AI_DEFAULT_MAX_TOKENS = 256  # what the run endpoint uses when no max_tokens is sent

# Workers AI finish reasons, as Cloudflare's own OpenAI-compatible endpoint maps them.
_FINISH = {"stop": "stop", "length": "length", "model_length": "length", "tool_calls": "tool_calls"}


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def _as_text(value: Any) -> str:
    """A model's answer as text: JSON mode may hand back an object instead of a string."""
    if value is None:
        return ""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _usage(data: Any) -> tuple[Usage | None, dict[str, Any] | None]:
    """Workers AI usage as the gateway's Usage and as OpenAI's usage object."""
    usage = Usage.from_openai(data)
    if usage is None:
        return None, None
    body: dict[str, Any] = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                            "total_tokens": usage.total_tokens}
    cached = (data.get("prompt_tokens_details") or {}).get("cached_tokens")
    if isinstance(cached, int):
        body["prompt_tokens_details"] = {"cached_tokens": cached}
    return usage, body


def _tool_call(item: dict[str, Any]) -> dict[str, Any]:
    """One tool call in OpenAI's shape, from Workers AI's flat ``{name, arguments}`` or OpenAI-style form."""
    function = item.get("function") if isinstance(item.get("function"), dict) else item
    return {"id": item.get("id") or call_id(), "type": "function",
            "function": {"name": function.get("name") or "", "arguments": arguments(function.get("arguments"))}}


def _answer(result: dict[str, Any]) -> tuple[Any, list[dict[str, Any]], str | None]:
    """(content, tool calls, upstream finish reason) from a native result or an OpenAI-style one."""
    choices = result.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):  # some models answer like OpenAI
        message = choices[0].get("message") or {}
        return message.get("content"), message.get("tool_calls") or [], choices[0].get("finish_reason")
    calls = result.get("tool_calls")
    return result.get("response"), calls if isinstance(calls, list) else [], result.get("finish_reason")


def _finish_reason(upstream: Any, has_tool_calls: bool, usage: Usage | None, limit: int) -> str:
    if has_tool_calls:
        return "tool_calls"
    if upstream == "error":
        raise ProviderError(502, "Cloudflare Workers AI reported an error while generating the answer.",
                            "upstream_error", "upstream_error")
    if upstream in _FINISH:
        return _FINISH[upstream]
    if usage is not None and usage.completion_tokens >= limit:
        return "length"
    return "stop"


def _failure_text(data: dict[str, Any]) -> str:
    """The messages of a failure inside a 200: a v4 envelope's ``errors`` or a stream event's ``error``."""
    errors = data.get("errors") if isinstance(data.get("errors"), list) else [data.get("error")]
    texts = [str(e.get("message") if isinstance(e, dict) else e) for e in errors if e]
    return "; ".join(texts) or "no details"


def result_of(body: bytes, account: Account) -> dict[str, Any]:
    """The ``result`` object of a v4 envelope, or a 502 saying what was wrong."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict) and data.get("success") is False:
        raise failure(data, account)
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(result, dict):
        raise ProviderError(502, f"The upstream '{account.name}' returned a response that is not a Workers AI result.",
                            "upstream_error", "upstream_bad_response")
    return result


def failure(data: dict[str, Any], account: Account) -> ProviderError:
    """A failure reported inside a 200 answer or stream."""
    text = redact(_failure_text(data), account.api_key)[:1000]
    return ProviderError(502, f"Cloudflare Workers AI reported a failure for provider account '{account.name}': "
                         f"{text}", "upstream_error", "upstream_error")


def completion(body: bytes, public_model: str, account: Account, limit: int) -> tuple[dict[str, Any], Usage | None]:
    """An OpenAI ``chat.completion`` for a 2xx run answer, and its usage."""
    result = result_of(body, account)
    content, calls, reason = _answer(result)
    usage, usage_body = _usage(result.get("usage"))
    tool_calls = [_tool_call(call) for call in calls if isinstance(call, dict)]
    message: dict[str, Any] = {"role": "assistant", "content": _as_text(content) or (None if tool_calls else ""),
                               "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    choice = {"index": 0, "message": message, "logprobs": None,
              "finish_reason": _finish_reason(reason, bool(tool_calls), usage, limit)}
    document: dict[str, Any] = {"id": _completion_id(), "object": "chat.completion", "created": int(time.time()),
                                "model": public_model, "choices": [choice]}
    if usage_body is not None:
        document["usage"] = usage_body
    return document, usage


class CloudflareStream(StreamTranslator):
    """Native Workers AI SSE (``{"response": ...}``, ``tool_calls``, a final ``usage`` event) to OpenAI chunks."""

    def __init__(self, account: Account, public_model: str, include_usage: bool, limit: int) -> None:
        self.account = account
        self.include_usage = include_usage
        self.limit = limit
        self._base = {"id": _completion_id(), "object": "chat.completion.chunk", "created": int(time.time()),
                      "model": public_model}
        self._sse = SSEBuffer()
        self._events = 0
        self._role_sent = False
        self._tool_indexes: dict[Any, int] = {}  # upstream tool-call index -> OpenAI index
        self._reason: Any = None
        self._usage_body: dict[str, Any] | None = None

    def feed(self, data: bytes) -> bytes:
        return b"".join(self._event(event) for event in self._sse.events(data))

    def close(self) -> bytes:
        rest = self._sse.rest()
        if not rest or self.finished:
            return b""
        if self._events == 0 and rest.startswith(b"{"):  # some models answer a stream request with plain JSON
            return self._whole_answer(rest)
        return self._event(rest)

    @reads_upstream
    def _event(self, event: bytes) -> bytes:
        lines = [line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:")]
        if not lines or self.finished:
            return b""  # comments, other fields, anything after [DONE]
        payload = b"\n".join(lines)
        self._events += 1
        if payload == b"[DONE]":
            return self._end()
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise ProviderError(502, "Cloudflare Workers AI sent an unreadable stream event.", "upstream_error",
                                "upstream_bad_response") from None
        if not isinstance(data, dict):
            return b""
        if data.get("success") is False or data.get("errors") or data.get("error"):
            raise failure(data, self.account)
        return self._translate(data)

    def _translate(self, data: dict[str, Any]) -> bytes:
        out = []
        if isinstance(data.get("usage"), dict):
            self.usage, self._usage_body = _usage(data["usage"])
        choices = data.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):  # OpenAI-style events
            delta = choices[0].get("delta") or {}
            content, calls, reason = delta.get("content"), delta.get("tool_calls"), choices[0].get("finish_reason")
        else:
            content, calls, reason = data.get("response"), data.get("tool_calls"), data.get("finish_reason")
        text = _as_text(content)
        if text:
            out.append(self._chunk({"content": text}))
        if isinstance(calls, list) and calls:
            deltas = [self._tool_delta(call) for call in calls if isinstance(call, dict)]
            out.append(self._chunk({"content": None, "tool_calls": deltas} if not self._role_sent
                                   else {"tool_calls": deltas}))
        if reason:
            self._reason = reason
        return b"".join(out)

    def _tool_delta(self, call: dict[str, Any]) -> dict[str, Any]:
        key = call.get("index")
        if key is not None and key in self._tool_indexes:  # a later fragment of a call already started
            piece = (call.get("function") or {}).get("arguments")
            return {"index": self._tool_indexes[key], "function": {"arguments": arguments(piece) if piece else ""}}
        index = len(self._tool_indexes)
        self._tool_indexes[key if key is not None else f"call-{index}"] = index
        return {"index": index, **_tool_call(call)}

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        if not self._role_sent:
            delta = {"role": "assistant", **delta}
            self._role_sent = True
        if delta.get("content") or "tool_calls" in delta:
            self.first_token_seen = True
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + orjson.dumps({**self._base, "choices": [choice]}) + b"\n\n"

    def _end(self) -> bytes:
        if self.finished:
            return b""
        out = [] if self._role_sent else [self._chunk({"content": ""})]
        finish = _finish_reason(self._reason, bool(self._tool_indexes), self.usage, self.limit)
        out.append(self._chunk({}, finish))
        if self.include_usage and self._usage_body is not None:
            out.append(b"data: " + orjson.dumps({**self._base, "choices": [], "usage": self._usage_body}) + b"\n\n")
        out.append(b"data: [DONE]\n\n")
        self.finished = True
        return b"".join(out)

    def _whole_answer(self, body: bytes) -> bytes:
        result = result_of(body, self.account)
        content, calls, reason = _answer(result)
        answer = {"response": content, "tool_calls": calls, "finish_reason": reason, "usage": result.get("usage")}
        return self._translate(answer) + self._end()


