"""A Responses API request as a chat completion body, for providers that only have chat.

``chat_body`` turns ``input`` (a string, or message / ``function_call`` / ``function_call_output``
items), ``instructions``, ``tools``, ``tool_choice``, ``text.format``, ``reasoning.effort`` and the
sampling fields into the chat completion body the adapter already translates. What the result
needs to know (the ids to answer with, which flattened tool names were namespaced or custom
tools) is returned as the context of the call.

Function tools inside a ``namespace`` become plain function tools named ``<namespace>__<name>``
(chat tools have no namespaces); a call of one comes back as a ``function_call`` with its
``namespace`` and ``name`` again. A ``custom`` tool with free-text input becomes a function with
one string parameter ``input``, and its call comes back as a ``custom_tool_call``; a custom tool
bound to a grammar, and every hosted tool (file search, code interpreter, ...), is a 400: a chat
model cannot honour them. The one exception is web search, which clients such as Codex CLI offer the
model on every request as an optional extra: it is left out (the model answers without searching),
unless ``tool_choice`` requires it (a 400).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from providers.parameters import UNSUPPORTED_VALUE, invalid, refusal

NAMESPACE_SEPARATOR = "__"
# Hosted tools offered as optional extras: left out of a translated request rather than refused.
OPTIONAL_HOSTED_TOOLS = frozenset({"web_search", "web_search_preview", "web_search_preview_2025_03_11"})
CUSTOM_INPUT = {"type": "object", "properties": {"input": {"type": "string", "description": "The tool's input."}},
                "required": ["input"], "additionalProperties": False}

# Fields of a Responses request that chat translation reads; the rest are judged below.
_SAMPLING = ("temperature", "top_p", "parallel_tool_calls", "user", "safety_identifier", "prompt_cache_key",
             "service_tier")
# Accepted and not sent: they do not change the answer (or the gateway handles them itself).
_DROPPED = frozenset({"store", "metadata", "include", "truncation", "stream_options", "max_tool_calls",
                      "previous_response_id", "prompt_cache_retention", "background"})
# Refused whatever their value (null counts as not sent): a chat model cannot honour them.
_REFUSED = {"conversation": "conversations are not kept by the gateway; use previous_response_id.",
            "prompt": "stored prompt templates live at OpenAI; send the instructions and input instead."}


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def chat_body(body: dict[str, Any], provider: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the chat completion body, the call's context) for a Responses request body."""
    for name, why in _REFUSED.items():
        if body.get(name) is not None:
            raise refusal(provider, name, why)
    if body.get("background"):
        raise refusal(provider, "background", "background responses are not supported by the gateway; "
                      "stream the response instead.")
    tools, names = _tools(body.get("tools"), provider)
    chat: dict[str, Any] = {"messages": messages(body, provider)}
    if tools:
        chat["tools"] = tools
    for name in _SAMPLING:
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"], provider, names)
    if body.get("top_logprobs"):
        raise refusal(provider, "top_logprobs", "log probabilities are not translated to Responses items.")
    _text(body.get("text"), chat, provider)
    reasoning = body.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, dict):
        raise invalid("reasoning", "'reasoning' must be an object.", "invalid_type")
    if reasoning and reasoning.get("effort") is not None:
        chat["reasoning_effort"] = reasoning["effort"]
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    context = {"id": new_id("resp"), "created_at": int(time.time()), "names": names}
    return chat, context


# -- input ----------------------------------------------------------------------------------------

def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """``input`` as a list of items (a string is one user message)."""
    value = body.get("input")
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list):
        raise invalid("input", "'input' must be a string or an array of input items.", "invalid_type")
    return value


def messages(body: dict[str, Any], provider: str) -> list[dict[str, Any]]:
    """The chat messages for ``instructions`` and ``input``."""
    out: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        out.append({"role": "system", "content": instructions})
    elif isinstance(instructions, list):
        out += _items(instructions, provider, "instructions")
    elif instructions is not None and not isinstance(instructions, str):
        raise invalid("instructions", "'instructions' must be a string.", "invalid_type")
    out += _items(input_items(body), provider, "input")
    if not any(m["role"] != "system" for m in out):
        raise invalid("input", "'input' must contain at least one message.", "missing_required_parameter")
    return out


def _items(items: list[Any], provider: str, where: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise invalid(at, f"'{at}' must be an object.", "invalid_type")
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            out.append(_message(item, provider, at))
        elif kind in ("function_call", "custom_tool_call"):
            call = _tool_call(item, at)
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant":  # one assistant turn: its text and its calls
                last.setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind in ("function_call_output", "custom_tool_call_output"):
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or not call_id:
                raise invalid(f"{at}.call_id", f"Missing required parameter: '{at}.call_id'.",
                              "missing_required_parameter")
            out.append({"role": "tool", "tool_call_id": call_id, "content": _output_text(item.get("output"), at)})
        elif kind == "reasoning":
            continue  # another model's reasoning: not something a chat model can read back
        else:
            raise refusal(provider, f"{at}.type", "only message, function_call and function_call_output items "
                          "can be translated to its chat interface.",
                          subject=f"The input item type {str(kind)[:40]!r}", code=UNSUPPORTED_VALUE)
    return out


def _tool_call(item: dict[str, Any], at: str) -> dict[str, Any]:
    call_id, name = item.get("call_id"), item.get("name")
    if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
        raise invalid(at, f"'{at}' must have a 'call_id' and a 'name'.", "missing_required_parameter")
    if isinstance(item.get("namespace"), str) and item["namespace"]:
        name = item["namespace"] + NAMESPACE_SEPARATOR + name
    if item.get("type") == "custom_tool_call":
        arguments = orjson.dumps({"input": str(item.get("input") or "")}).decode()
    else:
        arguments = item.get("arguments")
        if not isinstance(arguments, str):
            raise invalid(f"{at}.arguments", f"'{at}.arguments' must be a JSON string.", "invalid_type")
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _output_text(output: Any, at: str) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "".join(str(part.get("text") or "") for part in output
                       if isinstance(part, dict) and part.get("type") in ("input_text", "output_text"))
    raise invalid(f"{at}.output", f"'{at}.output' must be a string or an array of content parts.", "invalid_type")


_ROLES = frozenset({"user", "system", "developer", "assistant"})


def _message(item: dict[str, Any], provider: str, at: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in _ROLES:
        raise invalid(f"{at}.role", f"'{at}.role' must be one of {', '.join(sorted(_ROLES))}.", "invalid_value")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise invalid(f"{at}.content", f"'{at}.content' must be a string or an array of content parts.",
                      "invalid_type")
    if role == "assistant":
        text = "".join(str((p.get("text") if p.get("type") == "output_text" else p.get("refusal")) or "")
                       for p in content if isinstance(p, dict))
        return {"role": role, "content": text}
    parts = [_part(part, provider, f"{at}.content[{j}]") for j, part in enumerate(content)]
    if role in ("system", "developer"):
        return {"role": role, "content": "".join(p.get("text", "") for p in parts)}
    return {"role": role, "content": parts}


def _part(part: Any, provider: str, at: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise invalid(at, f"'{at}' must be an object.", "invalid_type")
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        if not isinstance(part.get("text"), str):
            raise invalid(f"{at}.text", f"'{at}.text' must be a string.", "invalid_type")
        return {"type": "text", "text": part["text"]}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise refusal(provider, f"{at}.image_url", "send the image as 'image_url' (a URL or a data URL); "
                          "file ids are OpenAI's.", subject="An input_image without 'image_url'")
        image: dict[str, Any] = {"url": url}
        if part.get("detail") in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    raise refusal(provider, f"{at}.type", "only input_text and input_image parts can be translated.",
                  subject=f"The content part type {str(kind)[:40]!r}", code=UNSUPPORTED_VALUE)


# -- tools ----------------------------------------------------------------------------------------

def _tools(tools: Any, provider: str) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Chat function tools, and for each flattened name that is not plain: [namespace, name, kind]."""
    if tools is None:
        return [], {}
    if not isinstance(tools, list):
        raise invalid("tools", "'tools' must be an array.", "invalid_type")
    out: list[dict[str, Any]] = []
    names: dict[str, list[str]] = {}
    for i, tool in enumerate(tools):
        at = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise invalid(at, f"'{at}' must be an object.", "invalid_type")
        if tool.get("type") in OPTIONAL_HOSTED_TOOLS:
            continue
        if tool.get("type") == "namespace":
            namespace = tool.get("name")
            if not isinstance(namespace, str) or not namespace or not isinstance(tool.get("tools"), list):
                raise invalid(at, f"'{at}' must have a 'name' and 'tools'.", "invalid_value")
            for j, inner in enumerate(tool["tools"]):
                out.append(_tool(inner, provider, f"{at}.tools[{j}]", namespace, names))
        else:
            out.append(_tool(tool, provider, at, "", names))
    return out, names


def _tool(tool: Any, provider: str, at: str, namespace: str, names: dict[str, list[str]]) -> dict[str, Any]:
    if not isinstance(tool, dict):
        raise invalid(at, f"'{at}' must be an object.", "invalid_type")
    kind, name = tool.get("type"), tool.get("name")
    if kind not in ("function", "custom"):
        raise refusal(provider, f"{at}.type", "only function and custom tools (also inside a namespace) can be "
                      "translated to its chat interface; hosted tools run at OpenAI.",
                      subject=f"The tool type {str(kind)[:40]!r}", code=UNSUPPORTED_VALUE)
    if not isinstance(name, str) or not name:
        raise invalid(f"{at}.name", f"Missing required parameter: '{at}.name'.", "missing_required_parameter")
    flat = namespace + NAMESPACE_SEPARATOR + name if namespace else name
    function: dict[str, Any] = {"name": flat}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    if kind == "custom":
        fmt = tool.get("format")
        if isinstance(fmt, dict) and fmt.get("type") not in (None, "text"):
            raise refusal(provider, f"{at}.format", "a chat model cannot be held to a grammar; give the custom "
                          "tool free-text input or make it a function tool.",
                          subject="A custom tool with a grammar format", code=UNSUPPORTED_VALUE)
        function["parameters"] = CUSTOM_INPUT
    else:
        if tool.get("parameters") is not None:
            function["parameters"] = tool["parameters"]
        if tool.get("strict") is not None:
            function["strict"] = tool["strict"]
    if namespace or kind == "custom":
        names[flat] = [namespace, name, kind]
    return {"type": "function", "function": function}


def _tool_choice(choice: Any, provider: str, names: dict[str, list[str]]) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") in ("function", "custom") and isinstance(choice.get("name"), str):
        name = choice["name"]
        if isinstance(choice.get("namespace"), str) and choice["namespace"]:
            name = choice["namespace"] + NAMESPACE_SEPARATOR + name
        return {"type": "function", "function": {"name": name}}
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        mode = choice.get("mode") if choice.get("mode") in ("auto", "required") else "auto"
        return mode
    raise refusal(provider, "tool_choice", "use 'auto', 'none', 'required' or a function tool.",
                  subject="This 'tool_choice'", code=UNSUPPORTED_VALUE)


def _text(text: Any, chat: dict[str, Any], provider: str) -> None:
    if text is None:
        return
    if not isinstance(text, dict):
        raise invalid("text", "'text' must be an object.", "invalid_type")
    if text.get("verbosity") is not None:
        chat["verbosity"] = text["verbosity"]
    fmt = text.get("format")
    if fmt is None:
        return
    if not isinstance(fmt, dict):
        raise invalid("text.format", "'text.format' must be an object.", "invalid_type")
    kind = fmt.get("type")
    if kind == "text":
        return
    if kind == "json_object":
        chat["response_format"] = {"type": "json_object"}
    elif kind == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if fmt.get(k) is not None}
        if "name" not in schema or not isinstance(schema.get("schema"), dict):
            raise invalid("text.format", "A json_schema format needs a 'name' and a 'schema'.",
                          "missing_required_parameter")
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
    else:
        raise refusal(provider, "text.format.type", "use 'text', 'json_object' or 'json_schema'.",
                      subject=f"The text format {str(kind)[:40]!r}", code=UNSUPPORTED_VALUE)
