"""OpenAI chat request -> the body of Workers AI's ``ai/run/{model}`` (pure translation, no I/O).

The model schemas take plain-string message contents, have no ``n``/``stop``/``logprobs``, and
default ``max_tokens`` to 256, so a limit is always sent when one is known.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from providers.base import ProviderError

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


def _unsupported(name: str, why: str = "is not supported") -> ProviderError:
    return ProviderError(400, f"The parameter '{name}' {why} by the Cloudflare Workers AI provider.",
                         "invalid_request_error", "unsupported_parameter", param=name)


def call_id() -> str:
    """A tool call id for a call the upstream gave none."""
    return f"call_{uuid.uuid4().hex[:24]}"


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


def arguments(value: Any) -> str:
    """Tool call arguments as the JSON text OpenAI sends (Workers AI may give an object)."""
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
                calls.append({"id": call.get("id") or call_id(), "type": "function",
                              "function": {"name": function.get("name"),
                                           "arguments": arguments(function.get("arguments"))}})
                tool_names[calls[-1]["id"]] = function.get("name")
            converted["tool_calls"] = calls
        if role == "tool":
            answered = message.get("tool_call_id")
            converted["tool_call_id"] = answered
            if answered in tool_names:
                converted["name"] = tool_names[answered]
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



def request_body(body: dict[str, Any], max_output_tokens: int | None) -> tuple[dict[str, Any], int | None]:
    """The run body for an OpenAI chat completion body, and the ``max_tokens`` it sends (if any)."""
    _check_parameters(body)
    payload: dict[str, Any] = {"messages": _messages(body["messages"])}
    for name in (*_SAMPLING, *_PENALTIES):
        if body.get(name) is not None:
            payload[name] = body[name]
    max_tokens = _max_tokens(body, max_output_tokens)
    if max_tokens is not None:
        payload["max_tokens"] = max_tokens
    if body.get("stream"):
        payload["stream"] = True
    if body.get("tools") and body.get("tool_choice") != "none":  # "none": the model cannot call what it lacks
        if body.get("tool_choice") not in (None, "auto"):
            raise _unsupported("tool_choice", "(other than \"auto\" or \"none\") is not supported")
        payload["tools"] = _tools(body["tools"])
    if body.get("response_format") is not None and (fmt := _response_format(body["response_format"])):
        payload["response_format"] = fmt
    return payload, max_tokens
