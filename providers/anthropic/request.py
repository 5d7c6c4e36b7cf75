"""Anthropic's Messages API: an OpenAI chat completion request rebuilt as a ``/v1/messages`` body.

System and developer messages move to the top-level ``system``, tool calls and tool results become
``tool_use`` / ``tool_result`` blocks, same-role turns are merged and ``max_tokens`` is always sent.
OpenAI parameters Anthropic cannot honour are refused with a 400 naming them; fields OpenAI does not
define (``top_k``, ``thinking``, ...) go to Anthropic untouched.
"""

from __future__ import annotations

from typing import Any

import orjson

from providers.errors import ProviderError
from providers.parameters import ParameterPolicy, Refuse, invalid, other_than, refusal, truthy

LABEL = "Anthropic"
DEFAULT_MAX_TOKENS = 4096
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

PARAMETERS = ParameterPolicy(
    mapped=frozenset({"messages", "model", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop",
                      "stream", "user", "safety_identifier", "tools", "tool_choice", "parallel_tool_calls"}),
    # They leave the answer as it is (stream_options is the gateway's own).
    dropped=frozenset({"seed", "store", "metadata", "service_tier", "prediction", "prompt_cache_key",
                       "prompt_cache_retention", "prompt_cache_options", "stream_options"}),
    # They would change the answer and Anthropic cannot honour them; their neutral values are dropped.
    refused={
        "n": Refuse(other_than(1)),
        "logprobs": Refuse(truthy),
        "top_logprobs": Refuse(other_than(0)),
        "logit_bias": Refuse(truthy),
        "presence_penalty": Refuse(other_than(0)),
        "frequency_penalty": Refuse(other_than(0)),
        "response_format": Refuse(lambda v: isinstance(v, dict) and v.get("type") not in (None, "text")),
        "audio": Refuse(),
        "modalities": Refuse(lambda v: isinstance(v, list) and any(m != "text" for m in v)),
        "web_search_options": Refuse(),
        "reasoning_effort": Refuse(),
        "verbosity": Refuse(other_than("medium")),
        "moderation": Refuse(),
        "functions": Refuse(),
        "function_call": Refuse(),
    },
    # Fields OpenAI does not define (top_k, thinking, ...) are Anthropic's own: sent as they are.
    unknown=None,
)


def unsupported(param: str, what: str | None = None) -> ProviderError:
    """The refusal of ``param``; ``what`` names the refused thing when it is not the whole parameter."""
    return refusal(LABEL, param, subject=what or "")


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
        raise invalid(f"{where}.tool_call_id", f"Missing required parameter: '{where}.tool_call_id'.",
                      "missing_required_parameter")
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


def request_body(body: dict[str, Any], upstream_model: str, max_output_tokens: int | None) -> dict[str, Any]:
    """The Messages API body for an OpenAI chat completion body (``max_output_tokens``: the registry default)."""
    PARAMETERS.check(body, LABEL)
    system, messages = convert_messages(body.get("messages") or [])
    payload: dict[str, Any] = PARAMETERS.unknown_fields(body)
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
    return payload
