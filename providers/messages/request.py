"""An Anthropic Messages request -> an OpenAI chat completion body, for providers that only speak chat.

Pure translation: the adapter's own ``chat_request`` then turns the chat body into its upstream's
request, with its own parameter policy. What a chat upstream cannot take is dropped when it does not
change the answer's meaning (``cache_control``, thinking blocks and the ``thinking`` budget: the model
answers without thinking), and refused otherwise (documents, server tools, MCP servers).
"""

from __future__ import annotations

from typing import Any

import orjson

from providers.parameters import ParameterPolicy, Refuse, invalid, refusal

# The Messages fields as a chat upstream gets them.
MESSAGES_PARAMETERS = ParameterPolicy(
    mapped=frozenset({"model", "messages", "system", "max_tokens", "temperature", "top_p", "top_k", "stop_sequences",
                      "stream", "tools", "tool_choice", "metadata"}),
    # Accepted and not sent: they tune Anthropic's own machinery, not the answer's meaning.
    dropped=frozenset({"thinking", "service_tier", "cache_control", "context_management", "output_config",
                       "provider"}),
    refused={"container": Refuse(), "mcp_servers": Refuse()},
)

# Content blocks a chat upstream has no counterpart for, and that would change the answer if dropped.
_REFUSED_BLOCKS = frozenset({"document", "search_result", "container_upload", "server_tool_use",
                             "web_search_tool_result", "mcp_tool_use", "mcp_tool_result"})
# Blocks dropped: the model's earlier thinking is Anthropic's, signed for Anthropic's models only.
_DROPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})


def blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """A message's content as a list of blocks (a string is one text block)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not all(isinstance(block, dict) for block in content):
        raise invalid(where, f"'{where}' must be a string or an array of content blocks.", "invalid_type")
    return content


def _text(block: dict[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise invalid(f"{where}.text", f"'{where}.text' must be a string.", "invalid_type")
    return text


def system_text(system: Any) -> str:
    """``system`` as one string (a string, or text blocks joined by blank lines)."""
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    parts = blocks(system, "system")
    return "\n\n".join(_text(block, f"system[{i}]") for i, block in enumerate(parts) if block.get("type") == "text")


def _image(block: dict[str, Any], where: str, label: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise invalid(f"{where}.source", f"'{where}.source' must be an object.", "invalid_type")
    if source.get("type") == "base64" and isinstance(source.get("data"), str) and isinstance(
            source.get("media_type"), str):
        return {"type": "image_url", "image_url": {"url": f"data:{source['media_type']};base64,{source['data']}"}}
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise refusal(label, f"{where}.source", subject=f"An image source of type '{str(source.get('type'))[:40]}'",
                  why="use a base64 or url source.")


def _tool_result(block: dict[str, Any], where: str, label: str) -> dict[str, Any]:
    tool_use_id = block.get("tool_use_id")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        raise invalid(f"{where}.tool_use_id", f"'{where}.tool_use_id' must be a non-empty string.")
    content = block.get("content")
    if content is None:
        text = ""
    else:
        parts = blocks(content, f"{where}.content")
        for j, part in enumerate(parts):
            if part.get("type") != "text":
                raise refusal(label, f"{where}.content[{j}]", subject="A tool result that is not text",
                              why="send the tool's output as text.")
        text = "\n".join(_text(part, f"{where}.content[{j}]") for j, part in enumerate(parts))
    if block.get("is_error") is True:
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": tool_use_id, "content": text}


def _user(content: Any, where: str, label: str) -> list[dict[str, Any]]:
    """One user turn: its tool results as ``tool`` messages first, then the rest as one user message."""
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(blocks(content, f"{where}.content")):
        at = f"{where}.content[{j}]"
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": _text(block, at)})
        elif kind == "image":
            parts.append(_image(block, at, label))
        elif kind == "tool_result":
            out.append(_tool_result(block, at, label))
        elif kind in _DROPPED_BLOCKS:
            continue
        else:
            raise refusal(label, f"{at}.type", subject=f"A content block of type '{str(kind)[:40]}'")
    if parts:
        only_text = all(part["type"] == "text" for part in parts)
        out.append({"role": "user", "content": "".join(p["text"] for p in parts) if only_text and len(parts) == 1
                    else parts})
    return out


def _assistant(content: Any, where: str, label: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(blocks(content, f"{where}.content")):
        at = f"{where}.content[{j}]"
        kind = block.get("type")
        if kind == "text":
            texts.append(_text(block, at))
        elif kind == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise invalid(at, f"'{at}' needs a string 'id' and 'name'.")
            arguments = orjson.dumps(block.get("input") if block.get("input") is not None else {}).decode()
            calls.append({"id": block["id"], "type": "function",
                          "function": {"name": block["name"], "arguments": arguments}})
        elif kind in _DROPPED_BLOCKS:
            continue
        else:
            raise refusal(label, f"{at}.type", subject=f"A content block of type '{str(kind)[:40]}'")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def chat_messages(body: dict[str, Any], label: str) -> list[dict[str, Any]]:
    """The chat messages for a Messages body: the system prompt first, each turn translated."""
    out: list[dict[str, Any]] = []
    if system := system_text(body.get("system")):
        out.append({"role": "system", "content": system})
    for i, message in enumerate(body.get("messages") or []):
        where = f"messages[{i}]"
        if message.get("role") == "assistant":
            out.append(_assistant(message.get("content"), where, label))
        elif message.get("role") == "system":
            out.append({"role": "system", "content": system_text(message.get("content"))})
        else:
            out += _user(message.get("content"), where, label)
    return out


def chat_tools(tools: Any, label: str) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise invalid("tools", "'tools' must be an array.", "invalid_type")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise invalid(f"tools[{i}]", f"'tools[{i}]' must be an object with a 'name'.")
        if tool.get("type") not in (None, "custom"):  # Anthropic's server tools (web search, bash, ...)
            raise refusal(label, f"tools[{i}].type", subject=f"The tool type '{str(tool['type'])[:40]}'",
                          why="only client tools (a name and an input_schema) can be offered to this model.")
        function: dict[str, Any] = {"name": tool["name"],
                                    "parameters": tool.get("input_schema") or {"type": "object", "properties": {}}}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> tuple[Any, bool | None]:
    """(OpenAI's tool_choice, parallel_tool_calls) for Anthropic's tool_choice."""
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        raise invalid("tool_choice", "'tool_choice.type' must be 'auto', 'any', 'tool' or 'none'.")
    kind = choice["type"]
    if kind == "tool":
        if not isinstance(choice.get("name"), str):
            raise invalid("tool_choice.name", "'tool_choice.name' must be a string.")
        mapped: Any = {"type": "function", "function": {"name": choice["name"]}}
    else:
        mapped = {"auto": "auto", "any": "required", "none": "none"}[kind]
    parallel = False if choice.get("disable_parallel_tool_use") is True else None
    return mapped, parallel


def chat_body(body: dict[str, Any], label: str, maps_top_k: bool = False) -> dict[str, Any]:
    """The chat completion body for a Messages body (``model`` already removed); refuses what the
    provider ``label`` cannot honour. ``top_k`` is sent only to providers that map it (``maps_top_k``)."""
    MESSAGES_PARAMETERS.check(body, label)
    chat: dict[str, Any] = {"messages": chat_messages(body, label)}
    for name in ("max_tokens", "temperature", "top_p"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if maps_top_k and body.get("top_k") is not None:
        chat["top_k"] = body["top_k"]
    if body.get("stop_sequences"):
        chat["stop"] = body["stop_sequences"]
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}  # the Messages stream always ends with its usage
    if body.get("tools"):
        chat["tools"] = chat_tools(body["tools"], label)
        if body.get("tool_choice") is not None:
            chat["tool_choice"], parallel = _tool_choice(body["tool_choice"])
            if parallel is not None:
                chat["parallel_tool_calls"] = parallel
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        chat["user"] = metadata["user_id"]
    return chat
