"""OpenAI chat request -> the body of Workers AI's ``ai/run/{model}`` (pure translation, no I/O).

The model schemas take plain-string message contents, have no ``n``/``stop``/``logprobs``, and
default ``max_tokens`` to 256, so a limit is always sent when one is known.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from providers.parameters import (
    UNSUPPORTED_VALUE,
    ParameterPolicy,
    Refuse,
    invalid,
    is_false,
    negative,
    other_than,
    refusal,
    truthy,
)

LABEL = "Cloudflare Workers AI"

# Sent as they are: the same meaning on both sides (Workers AI's ranges are checked upstream).
_SAMPLING = ("temperature", "top_p", "top_k", "seed", "repetition_penalty")
# OpenAI allows -2..2, Workers AI only 0..2: a negative value cannot be honoured.
_PENALTIES = ("frequency_penalty", "presence_penalty")


def _negative(name: str) -> Refuse:
    return Refuse(negative, "it accepts 0 to 2.", f"A negative '{name}'", UNSUPPORTED_VALUE)


PARAMETERS = ParameterPolicy(
    mapped=frozenset({"messages", "stream", "max_tokens", "max_completion_tokens", "tools", "tool_choice",
                      "response_format", *_SAMPLING, *_PENALTIES}),
    dropped=frozenset({"user", "safety_identifier", "prompt_cache_key", "metadata", "store", "service_tier",
                       "stream_options"}),
    # No equivalent upstream, and they change the answer; their neutral values are dropped.
    refused={
        "n": Refuse(other_than(1), "it gives one answer per request.", "A value of 'n' other than 1"),
        "logprobs": Refuse(truthy),
        "logit_bias": Refuse(truthy),
        "stop": Refuse(truthy),
        "top_logprobs": Refuse(),
        "modalities": Refuse(other_than(["text"]), "it answers with text only.",
                             "A value of 'modalities' other than [\"text\"]"),
        "parallel_tool_calls": Refuse(is_false, "it cannot be told to call one tool at a time.",
                                      "'parallel_tool_calls' set to false"),
        **{name: Refuse() for name in ("audio", "prediction", "web_search_options", "reasoning_effort", "verbosity",
                                       "functions", "function_call")},
    },
    refused_values={name: _negative(name) for name in _PENALTIES},
    # Unknown fields are refused, as OpenAI itself refuses them.
    unknown=Refuse(why="it is not a recognised chat completion parameter, or the provider cannot honour it."),
)


def call_id() -> str:
    """A tool call id for a call the upstream gave none."""
    return f"call_{uuid.uuid4().hex[:24]}"


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
            raise refusal(LABEL, f"{where}.content[{j}]", "only text parts are.",
                          subject=f"A content part of type '{kind}'")
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
            raise refusal(LABEL, f"{where}.role", "use 'tool' messages.", subject="The deprecated 'function' role",
                          code=UNSUPPORTED_VALUE)
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
        raise invalid("tools", "'tools' must be an array.", "invalid_type")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
            raise refusal(LABEL, f"tools[{i}]", "only function tools are.", subject="A tool that is not a function")
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
    raise refusal(LABEL, "response_format", "use 'text', 'json_object' or 'json_schema'.",
                  subject=f"The response_format type {kind!r}", code=UNSUPPORTED_VALUE)


def _max_tokens(body: dict[str, Any], default: int | None) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise invalid(name, f"'{name}' must be a positive integer.")
        return value
    return default


def request_body(body: dict[str, Any], max_output_tokens: int | None) -> tuple[dict[str, Any], int | None]:
    """The run body for an OpenAI chat completion body, and the ``max_tokens`` it sends (if any)."""
    PARAMETERS.check(body, LABEL)
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
            raise refusal(LABEL, "tool_choice", "it cannot be made to call a tool.",
                          subject="A 'tool_choice' other than \"auto\" or \"none\"")
        payload["tools"] = _tools(body["tools"])
    if body.get("response_format") is not None and (fmt := _response_format(body["response_format"])):
        payload["response_format"] = fmt
    return payload, max_tokens
