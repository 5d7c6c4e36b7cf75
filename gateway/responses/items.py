"""A Responses request's ``input`` as stored items: each with an ``id`` and in the shape the API lists them."""

from __future__ import annotations

import secrets
from typing import Any

# Item type -> the prefix of the ids the gateway gives items that came without one.
_PREFIXES = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "custom_tool_call": "ctc",
             "custom_tool_call_output": "ctco", "reasoning": "rs"}


def _id(kind: str) -> str:
    return f"{_PREFIXES.get(kind, 'item')}_{secrets.token_hex(16)}"


def _parts(content: Any, role: str) -> Any:
    if not isinstance(content, str):
        return content
    if role == "assistant":
        return [{"type": "output_text", "text": content, "annotations": [], "logprobs": []}]
    return [{"type": "input_text", "text": content}]


def stored(items: list[Any]) -> list[dict[str, Any]]:
    """The client's input items as the API lists them (already-stored items keep their ids)."""
    out: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        item = dict(item)
        kind = item.get("type") or ("message" if "role" in item else "item")
        item["type"] = kind
        if kind == "message":
            item["content"] = _parts(item.get("content"), str(item.get("role")))
        if kind != "message" or item.get("role") == "assistant" or "status" in item:
            item.setdefault("status", "completed")
        if not isinstance(item.get("id"), str) or not item["id"]:
            item["id"] = _id(kind)
        out.append(item)
    return out


def for_upstream(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored items to send again as input: without the ids the gateway gave them (an upstream that keeps
    its own items would look them up), except reasoning items, which are read back by id."""
    return [item if item.get("type") == "reasoning" else {k: v for k, v in item.items() if k != "id"}
            for item in items]
