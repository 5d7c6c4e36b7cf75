"""Anthropic's Messages API (``POST /v1/messages``) behind OpenAI's chat completions interface.

Requests are rebuilt: system and developer messages move to the top-level ``system``, tool calls
and tool results become ``tool_use`` / ``tool_result`` blocks, same-role turns are merged and
``max_tokens`` is always sent. Answers and stream events are rebuilt in OpenAI's shapes. OpenAI
parameters Anthropic cannot honour are refused with a 400 naming them, never silently dropped;
fields OpenAI does not define (``top_k``, ``thinking``, ...) go to Anthropic untouched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from providers.base import (
    Adapter,
    ChatResult,
    ProviderError,
    SSEBuffer,
    StreamTranslator,
    UpstreamRequest,
    Usage,
)

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

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

# OpenAI parameters that would change the answer and that Anthropic cannot honour: refused.
REFUSED: dict[str, Callable[[Any], bool]] = {
    "n": lambda v: v not in (None, 1),
    "logprobs": lambda v: bool(v),
    "top_logprobs": lambda v: v not in (None, 0),
    "logit_bias": lambda v: bool(v),
    "presence_penalty": lambda v: v not in (None, 0),
    "frequency_penalty": lambda v: v not in (None, 0),
    "response_format": lambda v: isinstance(v, dict) and v.get("type") not in (None, "text"),
    "audio": lambda v: v is not None,
    "modalities": lambda v: isinstance(v, list) and any(m != "text" for m in v),
    "web_search_options": lambda v: v is not None,
    "reasoning_effort": lambda v: v is not None,
    "verbosity": lambda v: v not in (None, "medium"),
    "moderation": lambda v: v is not None,
    "functions": lambda v: v is not None,
    "function_call": lambda v: v is not None,
}

# OpenAI parameters that leave the answer as it is: dropped (stream_options is the gateway's own).
DROPPED = frozenset({
    "seed", "store", "metadata", "service_tier", "prediction", "prompt_cache_key", "prompt_cache_retention",
    "prompt_cache_options", "stream_options",
})

MAPPED = frozenset({
    "messages", "model", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "stream", "user",
    "safety_identifier", "tools", "tool_choice", "parallel_tool_calls",
})
OPENAI_FIELDS = MAPPED | DROPPED | frozenset(REFUSED)


def unsupported(param: str, what: str | None = None) -> ProviderError:
    return ProviderError(
        400, f"{what or f'The parameter {param!r}'} is not supported by the Anthropic provider that serves "
        "this model; remove it or use a model from another provider.",
        "invalid_request_error", "unsupported_parameter", param=param,
    )


def invalid(param: str, message: str) -> ProviderError:
    return ProviderError(400, message, "invalid_request_error", "invalid_value", param=param)


# -- request ---------------------------------------------------------------------------------------

def _text_of(content: Any, where: str) -> str:
    """The text of a system/developer message (a string or text parts)."""
    if isinstance(content, str):
        return content
    parts = []
    for j, part in enumerate(content or []):
        if not isinstance(part, dict) or part.get("type") != "text":
            raise unsupported(f"{where}.content[{j}]", f"A {_part_type(part)!r} part in a system message")
        parts.append(str(part.get("text") or ""))
    return "".join(parts)


def _part_type(part: Any) -> str:
    return str(part.get("type")) if isinstance(part, dict) else type(part).__name__


def _image_block(part: dict[str, Any], where: str) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise invalid(f"{where}.image_url.url", "An image_url part needs a URL.")
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not data:
            raise invalid(f"{where}.image_url.url", "Image data URLs must look like data:image/png;base64,<data>.")
        if media_type not in IMAGE_TYPES:
            raise invalid(f"{where}.image_url.url", f"Anthropic accepts images of types {', '.join(sorted(IMAGE_TYPES))}, "
                          f"not {media_type or 'an unnamed type'}.")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise invalid(f"{where}.image_url.url", "An image URL must be an http(s) URL or a base64 data URL.")


def _content_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """User (or tool result) content as text and image blocks; empty text is left out."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for j, part in enumerate(content or []):
        kind = _part_type(part)
        if kind == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": str(part["text"])})
        elif kind == "image_url":
            blocks.append(_image_block(part, f"{where}.content[{j}]"))
        else:
            raise unsupported(f"{where}.content[{j}]", f"A {kind!r} content part")
    return blocks


def _assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, list):  # assistant parts are text or refusal
        content = [{"type": "text", "text": p.get("text") or p.get("refusal")} if isinstance(p, dict)
                   and p.get("type") in ("text", "refusal") else p for p in content]
    blocks = _content_blocks(content, where)
    for j, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not call.get("id") or not function.get("name"):
            raise invalid(f"{where}.tool_calls[{j}]", "A tool call needs an id and a function name.")
        arguments = function.get("arguments") or "{}"
        try:
            parsed = orjson.loads(arguments)
        except (orjson.JSONDecodeError, TypeError):
            parsed = None
        if not isinstance(parsed, dict):
            raise invalid(f"{where}.tool_calls[{j}].function.arguments",
                          "Tool call arguments must be a JSON object for Anthropic models.")
        blocks.append({"type": "tool_use", "id": call["id"], "name": function["name"], "input": parsed})
    return blocks


def _tool_result(message: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise ProviderError(400, f"Missing required parameter: '{where}.tool_call_id'.", "invalid_request_error",
                            "missing_required_parameter", f"{where}.tool_call_id")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    content = message.get("content")
    if isinstance(content, str):
        if content:
            block["content"] = content
    elif content:
        block["content"] = _content_blocks(content, where)
    return block


def convert_messages(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """(system prompt, Anthropic turns): same-role turns merged, tool results first in their turn."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role, where = message.get("role"), f"messages[{i}]"
        if role in ("system", "developer"):
            text = _text_of(message.get("content"), where)
            if text:
                system.append(text)
            continue
        if role == "user":
            blocks = _content_blocks(message.get("content"), where)
        elif role == "assistant":
            blocks = _assistant_blocks(message, where)
        elif role == "tool":
            role, blocks = "user", [_tool_result(message, where)]
        else:
            raise unsupported(f"{where}.role", f"The message role {role!r}")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        turn["content"].sort(key=lambda block: block["type"] != "tool_result")  # stable: results first
    return "\n\n".join(system), turns


def convert_tools(tools: Any) -> list[dict[str, Any]]:
    converted = []
    for j, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise unsupported(f"tools[{j}]", f"A tool of type {_part_type(tool)!r}")
        entry = {"name": function["name"],
                 "input_schema": function.get("parameters") or {"type": "object", "properties": {}}}
        if function.get("description"):
            entry["description"] = function["description"]
        converted.append(entry)
    return converted


def convert_tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None:
        mapped = {"type": "auto"}
    elif choice in ("auto", "none"):
        mapped = {"type": choice}
    elif choice == "required":
        mapped = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function" and isinstance(
            (choice.get("function") or {}).get("name"), str):
        mapped = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise unsupported("tool_choice", f"The tool_choice {orjson.dumps(choice).decode()[:80]}")
    if parallel is False and mapped["type"] != "none":
        mapped["disable_parallel_tool_use"] = True
    elif choice is None:
        return None
    return mapped


# -- answers ---------------------------------------------------------------------------------------

def _counts(usage: Any, into: dict[str, int] | None = None) -> dict[str, int]:
    counts = into if into is not None else {}
    if isinstance(usage, dict):
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens"):
            if isinstance(usage.get(key), int):
                counts[key] = usage[key]
    return counts


def gateway_usage(counts: dict[str, int]) -> Usage:
    prompt = sum(counts.get(k, 0) for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
    completion = counts.get("output_tokens", 0)
    return Usage(prompt, completion, prompt + completion)


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
    An ``error`` event becomes a ProviderError, raised once the bytes before it are handed on.
    """

    def __init__(self, adapter: AnthropicAdapter, public_model: str, include_usage: bool) -> None:
        self._adapter = adapter
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
        self._error = self._adapter.error(status, orjson.dumps(payload))
        return b""


class AnthropicAdapter(Adapter):
    kind = "anthropic"
    label = "Anthropic"
    default_base_url = "https://api.anthropic.com/v1"

    def headers(self) -> dict[str, str]:
        options = self.account.options
        headers = {"x-api-key": self.account.api_key,
                   "anthropic-version": str(options.get("anthropic_version") or API_VERSION),
                   "content-type": "application/json"}
        if options.get("anthropic_beta"):
            headers["anthropic-beta"] = str(options["anthropic_beta"])
        extra = options.get("headers")
        if isinstance(extra, dict):
            headers.update({str(k): str(v) for k, v in extra.items()})
        return headers

    def chat_request(self, body: dict[str, Any], upstream_model: str, max_output_tokens: int | None = None) -> UpstreamRequest:
        for name, refused in REFUSED.items():
            if refused(body.get(name)):
                raise unsupported(name)
        system, messages = convert_messages(body.get("messages") or [])
        payload: dict[str, Any] = {k: v for k, v in body.items() if k not in OPENAI_FIELDS}
        limit = next((v for v in (body.get("max_completion_tokens"), body.get("max_tokens"), max_output_tokens)
                      if v is not None), DEFAULT_MAX_TOKENS)
        payload.update(model=upstream_model, max_tokens=limit, messages=messages)
        if system:
            payload["system"] = system
        temperature = body.get("temperature")
        if isinstance(temperature, int | float) and temperature > 1:
            raise invalid("temperature", f"Anthropic models accept a temperature from 0 to 1, not {temperature}.")
        for name in ("temperature", "top_p", "stream"):
            if body.get(name) is not None:
                payload[name] = body[name]
        stop = body.get("stop")
        if stop:
            payload["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        user = body.get("user") or body.get("safety_identifier")
        if user:
            payload["metadata"] = {"user_id": str(user)}
        if body.get("tools"):
            payload["tools"] = convert_tools(body["tools"])
            choice = convert_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
            if choice is not None:
                payload["tool_choice"] = choice
        elif body.get("tool_choice") not in (None, "auto", "none"):
            raise invalid("tool_choice", "'tool_choice' needs 'tools' to choose from.")
        return UpstreamRequest("POST", f"{self.base_url}/messages", self.headers(), orjson.dumps(payload))

    def chat_result(self, body: bytes, public_model: str) -> ChatResult:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict) or data.get("type") != "message" or not isinstance(data.get("content"), list):
            raise ProviderError(502, f"The upstream '{self.account.name}' returned a response that is not an "
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
        completion = {
            "id": str(data.get("id") or "chatcmpl-anthropic"), "object": "chat.completion", "created": int(time.time()),
            "model": public_model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish_reason(data.get("stop_reason"))}],
            "usage": openai_usage(counts),
        }
        return ChatResult(orjson.dumps(completion), gateway_usage(counts))

    def chat_stream(self, public_model: str, include_usage: bool) -> StreamTranslator:
        return AnthropicStream(self, public_model, include_usage)

    def error(self, status: int, body: bytes, retry_after: str | None = None) -> ProviderError:
        # 529 "overloaded" means try again later: a 503 for the client; a billing problem is the gateway's.
        return super().error({529: 503, 402: 502}.get(status, status), body, retry_after)

    def parse_error_body(self, body: bytes) -> tuple[str, str | None, str | None, str | None]:
        """Anthropic's ``{"type": "error", "error": {"type", "message"}}``."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return "", None, None, None
        error = data.get("error") if isinstance(data, dict) else None
        if not isinstance(error, dict):
            return "", None, None, None
        message = error.get("message")
        _, type_, code = ERRORS.get(error.get("type"), (0, None, None))
        return (message if isinstance(message, str) else "", type_, code, None)

    def models_request(self) -> UpstreamRequest:
        headers = self.headers()
        headers.pop("content-type")
        return UpstreamRequest("GET", f"{self.base_url}/models", headers)
