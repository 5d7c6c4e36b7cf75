"""Cloudflare Workers AI over REST, native run endpoint (providers.md §3 and §5).

``POST {base}/accounts/{account_id}/ai/run/{model}`` with a Bearer API token; answers come in
Cloudflare's v4 envelope ``{"result": {...}, "success": true, "errors": [], "messages": []}`` and
streams as ``data: {"response": "..."}`` events ending with ``data: [DONE]``. The model schemas take
plain-string message contents, have no ``n``/``stop``/``logprobs``, and default ``max_tokens`` to 256,
so the adapter always sends a limit when it knows one.

An adapter instance serves one call (``providers.registry.adapter_for`` makes a new one each time),
so ``chat_request`` remembers the ``max_tokens`` it sent to tell "length" from "stop" afterwards:
the native output has no finish reason.
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import quote

import orjson

from providers import embeddings
from providers.base import (
    Adapter,
    ChatResult,
    ProviderError,
    SSEBuffer,
    StreamTranslator,
    UpstreamRequest,
    Usage,
)

WORKERS_AI_DEFAULT_MAX_TOKENS = 256  # what the run endpoint uses when no max_tokens is sent

# Sent as they are: the same meaning on both sides (Workers AI's ranges are checked upstream).
_SAMPLING = ("temperature", "top_p", "top_k", "seed", "repetition_penalty")
# OpenAI allows -2..2, Workers AI only 0..2: a negative value cannot be honoured.
_PENALTIES = ("frequency_penalty", "presence_penalty")
# Accepted and dropped: they do not change the answer.
_HARMLESS = frozenset({"user", "safety_identifier", "prompt_cache_key", "metadata", "store", "service_tier",
                       "stream_options"})
# Rejected when set to anything but their neutral value: no equivalent upstream, and they change the answer.
_UNSUPPORTED = frozenset({"audio", "prediction", "web_search_options", "reasoning_effort", "verbosity", "functions",
                          "function_call"})
_HANDLED = frozenset({"messages", "stream", "max_tokens", "max_completion_tokens", "tools", "tool_choice",
                      "parallel_tool_calls", "response_format", "n", "logprobs", "top_logprobs", "logit_bias", "stop",
                      "modalities", *_SAMPLING, *_PENALTIES, *_HARMLESS, *_UNSUPPORTED})

# Workers AI finish reasons (Cloudflare's own provider mapping, providers.md §5.2).
_FINISH = {"stop": "stop", "length": "length", "model_length": "length", "tool_calls": "tool_calls"}
# Workers AI error codes worth an OpenAI error code of their own (providers.md §3.7).
_ERROR_CODES = {5007: "model_not_found", 3042: "model_not_found", 3036: "insufficient_quota",
                3040: "rate_limit_exceeded"}
_ROUTING_FAILED = 7003  # "Could not route to ...": a wrong account id or base URL, not the client's fault


def _unsupported(name: str, why: str = "is not supported") -> ProviderError:
    return ProviderError(400, f"The parameter '{name}' {why} by the Cloudflare Workers AI provider.",
                         "invalid_request_error", "unsupported_parameter", param=name)


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def _call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _as_text(value: Any) -> str:
    """A model's answer as text: JSON mode may hand back an object instead of a string."""
    if value is None:
        return ""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


# -- request -------------------------------------------------------------------------------------------

def _check_parameters(body: dict[str, Any]) -> None:
    """Reject what the run endpoint cannot honour; unknown fields too, as OpenAI itself does."""
    for name in body:
        if name not in _HANDLED:
            raise _unsupported(name, "is not a recognised chat completion parameter or is not supported")
    if body.get("n") not in (None, 1):
        raise _unsupported("n", "greater than 1 is not supported")
    for name in ("logprobs", "logit_bias", "stop"):
        if body.get(name):
            raise _unsupported(name)
    if body.get("top_logprobs") is not None:
        raise _unsupported("top_logprobs")
    if body.get("modalities") not in (None, ["text"]):
        raise _unsupported("modalities", "(other than [\"text\"]) is not supported")
    if body.get("parallel_tool_calls") is False:
        raise _unsupported("parallel_tool_calls", "set to false is not supported")
    for name in _UNSUPPORTED:
        if body.get(name) is not None:
            raise _unsupported(name)
    for name in _PENALTIES:
        value = body.get(name)
        if isinstance(value, int | float) and value < 0:
            raise ProviderError(400, f"Negative values of '{name}' are not supported by the Cloudflare Workers AI "
                                "provider (it accepts 0 to 2).", "invalid_request_error", "unsupported_value", name)


def _text(content: Any, where: str) -> str:
    """Message content as the plain string Workers AI's schemas take: text parts joined by newlines."""
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            texts.append(part["refusal"])
        else:
            raise ProviderError(400, f"Content parts of type '{kind}' are not supported by the Cloudflare Workers AI "
                                "provider; only text parts are.", "invalid_request_error", "unsupported_parameter",
                                f"{where}.content[{j}]")
    return "\n".join(texts)


def _arguments(value: Any) -> str:
    if value is None:
        return "{}"
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    tool_names: dict[str, str] = {}  # tool_call_id -> function name, for the tool results that follow
    for i, message in enumerate(messages):
        role, where = message["role"], f"messages[{i}]"
        if role == "function":
            raise ProviderError(400, "The deprecated 'function' role is not supported by the Cloudflare Workers AI "
                                "provider; use 'tool' messages.", "invalid_request_error", "unsupported_value",
                                f"{where}.role")
        converted: dict[str, Any] = {"role": "system" if role == "developer" else role,
                                     "content": _text(message.get("content"), where)}
        if role == "assistant" and message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                function = call.get("function") or {}
                calls.append({"id": call.get("id") or _call_id(), "type": "function",
                              "function": {"name": function.get("name"),
                                           "arguments": _arguments(function.get("arguments"))}})
                tool_names[calls[-1]["id"]] = function.get("name")
            converted["tool_calls"] = calls
        if role == "tool":
            call_id = message.get("tool_call_id")
            converted["tool_call_id"] = call_id
            if call_id in tool_names:
                converted["name"] = tool_names[call_id]
        out.append(converted)
    return out


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise ProviderError(400, "'tools' must be an array.", "invalid_request_error", "invalid_type", "tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
            raise ProviderError(400, "Only function tools are supported by the Cloudflare Workers AI provider.",
                                "invalid_request_error", "unsupported_parameter", f"tools[{i}]")
        function = tool["function"]
        spec = {key: function[key] for key in ("name", "description", "parameters") if key in function}
        out.append({"type": "function", "function": spec})
    return out


def _response_format(value: Any) -> dict[str, Any] | None:
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = (value.get("json_schema") or {}).get("schema") or {"type": "object"}
        return {"type": "json_schema", "json_schema": schema}  # Workers AI takes the bare schema
    raise ProviderError(400, f"response_format type {kind!r} is not supported by the Cloudflare Workers AI provider.",
                        "invalid_request_error", "unsupported_value", "response_format")


def _max_tokens(body: dict[str, Any], default: int | None) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ProviderError(400, f"'{name}' must be a positive integer.", "invalid_request_error",
                                "invalid_value", name)
        return value
    return default


# -- response ------------------------------------------------------------------------------------------

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
    return {"id": item.get("id") or _call_id(), "type": "function",
            "function": {"name": function.get("name") or "", "arguments": _arguments(function.get("arguments"))}}


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


class CloudflareStream(StreamTranslator):
    """Native Workers AI SSE (``{"response": ...}``, ``tool_calls``, a final ``usage`` event) to OpenAI chunks."""

    def __init__(self, adapter: CloudflareAdapter, public_model: str, include_usage: bool, limit: int) -> None:
        self.adapter = adapter
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
            raise self.adapter.failure(data)
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
            return {"index": self._tool_indexes[key], "function": {"arguments": _arguments(piece) if piece else ""}}
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
        result = self.adapter.result_of(body)
        content, calls, reason = _answer(result)
        answer = {"response": content, "tool_calls": calls, "finish_reason": reason, "usage": result.get("usage")}
        return self._translate(answer) + self._end()


class CloudflareAdapter(Adapter):
    kind = "cloudflare"
    label = "Cloudflare Workers AI"
    default_base_url = "https://api.cloudflare.com/client/v4"

    max_tokens_sent: int | None = None

    @property
    def name(self) -> str:
        return self.account.name

    @property
    def limit(self) -> int:
        """The output limit the upstream applied: what was sent, else Workers AI's default."""
        return self.max_tokens_sent or WORKERS_AI_DEFAULT_MAX_TOKENS

    def account_url(self) -> str:
        account_id = self.account.options.get("account_id")
        if not isinstance(account_id, str) or not account_id.strip():
            raise ProviderError(500, f"The Cloudflare provider account '{self.name}' has no account id: an "
                                "administrator must set options {\"account_id\": \"...\"} in the admin.",
                                "server_error", "provider_misconfigured")
        return f"{self.base_url}/accounts/{quote(account_id.strip(), safe='')}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.account.api_key}", "Content-Type": "application/json"}

    def chat_request(self, body: dict[str, Any], upstream_model: str, max_output_tokens: int | None = None
                     ) -> UpstreamRequest:
        _check_parameters(body)
        payload: dict[str, Any] = {"messages": _messages(body["messages"])}
        for name in (*_SAMPLING, *_PENALTIES):
            if body.get(name) is not None:
                payload[name] = body[name]
        self.max_tokens_sent = _max_tokens(body, max_output_tokens)
        if self.max_tokens_sent is not None:
            payload["max_tokens"] = self.max_tokens_sent
        if body.get("stream"):
            payload["stream"] = True
        if body.get("tools") and body.get("tool_choice") != "none":  # "none": the model cannot call what it lacks
            if body.get("tool_choice") not in (None, "auto"):
                raise _unsupported("tool_choice", "(other than \"auto\" or \"none\") is not supported")
            payload["tools"] = _tools(body["tools"])
        if body.get("response_format") is not None and (fmt := _response_format(body["response_format"])):
            payload["response_format"] = fmt
        return UpstreamRequest("POST", self.run_url(upstream_model), self.headers(), orjson.dumps(payload))

    def run_url(self, upstream_model: str) -> str:
        model = quote(upstream_model.strip("/"), safe="/@")  # catalog names keep their slashes as path segments
        return f"{self.account_url()}/ai/run/{model}"

    def result_of(self, body: bytes) -> dict[str, Any]:
        """The ``result`` object of a v4 envelope, or a 502 saying what was wrong."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict) and data.get("success") is False:
            raise self.failure(data)
        result = data.get("result") if isinstance(data, dict) else None
        if not isinstance(result, dict):
            raise ProviderError(502, f"The upstream '{self.name}' returned a response that is not a Workers AI result.",
                                "upstream_error", "upstream_bad_response")
        return result

    def failure(self, data: dict[str, Any]) -> ProviderError:
        """A failure reported inside a 200 answer or stream."""
        text = self.redact(_failure_text(data))[:1000]
        return ProviderError(502, f"Cloudflare Workers AI reported a failure for provider account '{self.name}': "
                             f"{text}", "upstream_error", "upstream_error")

    def chat_result(self, body: bytes, public_model: str) -> ChatResult:
        result = self.result_of(body)
        content, calls, reason = _answer(result)
        usage, usage_body = _usage(result.get("usage"))
        tool_calls = [_tool_call(call) for call in calls if isinstance(call, dict)]
        message: dict[str, Any] = {"role": "assistant", "content": _as_text(content) or (None if tool_calls else ""),
                                   "refusal": None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        choice = {"index": 0, "message": message, "logprobs": None,
                  "finish_reason": _finish_reason(reason, bool(tool_calls), usage, self.limit)}
        completion: dict[str, Any] = {"id": _completion_id(), "object": "chat.completion", "created": int(time.time()),
                                      "model": public_model, "choices": [choice]}
        if usage_body is not None:
            completion["usage"] = usage_body
        return ChatResult(orjson.dumps(completion), usage)

    def chat_stream(self, public_model: str, include_usage: bool) -> StreamTranslator:
        return CloudflareStream(self, public_model, include_usage, self.limit)

    def error(self, status: int, body: bytes, retry_after: str | None = None) -> ProviderError:
        codes = _error_codes(body)
        if _ROUTING_FAILED in codes:
            message = self.redact(self.parse_error_body(body)[0])[:500]
            return ProviderError(502, f"Cloudflare could not route the request for provider account '{self.name}': "
                                 f"check its account_id option and base URL ({message}).", "upstream_error",
                                 "upstream_misconfigured")
        if 3040 in codes or 3036 in codes:  # capacity / daily quota: always a rate limit (providers.md §5.3)
            status = 429
        elif 5007 in codes or 3042 in codes:  # no such model: a 404, as OpenAI answers for an unknown model
            status = 404
        return super().error(status, body, retry_after)

    def parse_error_body(self, body: bytes) -> tuple[str, str | None, str | None, str | None]:
        """Cloudflare's ``{"success": false, "errors": [{"code", "message"}]}``; OpenAI's shape otherwise."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return "", None, None, None
        errors = data.get("errors") if isinstance(data, dict) else None
        if not isinstance(errors, list) or not errors:
            return super().parse_error_body(body)
        messages, code = [], None
        for error in errors:
            if not isinstance(error, dict):
                continue
            text = str(error.get("message") or "Unknown error")
            if error.get("code") is not None:
                text += f" (Workers AI error {error['code']})"
                code = code or _ERROR_CODES.get(error["code"])
            messages.append(text)
        return "; ".join(messages), None, code, None

    def embeddings_request(self, body: dict[str, Any], upstream_model: str) -> UpstreamRequest:
        payload = embeddings.workers_ai_request(body, self.label)
        return UpstreamRequest("POST", self.run_url(upstream_model), self.headers(), orjson.dumps(payload))

    def embeddings_result(self, body: bytes, public_model: str, request: dict[str, Any]) -> ChatResult:
        vectors = embeddings.workers_ai_vectors(self.result_of(body))
        return embeddings.embedding_list(vectors, public_model, request, self.name)

    def models_request(self) -> UpstreamRequest:
        return UpstreamRequest("GET", f"{self.account_url()}/ai/models/search?per_page=1", self.headers())


def _error_codes(body: bytes) -> set[Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return set()
    errors = data.get("errors") if isinstance(data, dict) else None
    return {e.get("code") for e in errors if isinstance(e, dict)} if isinstance(errors, list) else set()
