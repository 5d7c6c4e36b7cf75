"""Usage of a Responses answer whose provider reported none: its input and output text, counted."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.usage import tokenizer
from providers.base import ProviderError, Usage
from providers.responses.request import messages


def _output_texts(response: Any) -> list[str]:
    found: list[str] = []
    for item in (response.get("output") if isinstance(response, dict) else None) or []:
        if not isinstance(item, dict):
            continue
        for key in ("arguments", "input", "name"):
            if isinstance(item.get(key), str):
                found.append(item[key])
        for part in item.get("content") or []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                found.append(part["text"])
    return found


def answer_text(answer: bytes) -> str:
    """The generated text of a response object, or of the delta events of a Responses stream."""
    stripped = answer.lstrip()
    if not stripped.startswith((b"event:", b"data:")):
        try:
            return "".join(_output_texts(orjson.loads(answer)))
        except orjson.JSONDecodeError:
            return ""
    parts: list[str] = []
    for line in answer.splitlines():
        if not line.startswith(b"data:"):
            continue
        try:
            event = orjson.loads(line[5:])
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict) and str(event.get("type", "")).endswith(".delta") and isinstance(event.get("delta"), str):
            parts.append(event["delta"])
    return "".join(parts)


def estimate(body: dict[str, Any], answer: bytes, model: str) -> Usage:
    try:
        chat: dict[str, Any] = {"messages": messages(body, "")}
    except ProviderError:
        chat = {"input": [str(body.get("input") or "")]}
    prompt, completion = tokenizer.estimate_usage(chat, answer_text(answer), model)
    return Usage(prompt, completion, prompt + completion)
