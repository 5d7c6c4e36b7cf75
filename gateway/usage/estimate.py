"""Usage for answers whose provider reported none: the answer's text, counted with gateway.usage.tokenizer."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.usage import tokenizer
from providers.base import Usage


def _texts(payload: Any) -> list[str]:
    """The generated text in one chat/completion body or stream chunk (content, text, tool arguments)."""
    found: list[str] = []
    if not isinstance(payload, dict):
        return found
    for choice in payload.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        if isinstance(choice.get("text"), str):
            found.append(choice["text"])
        for part in (choice.get("message"), choice.get("delta")):
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("content"), str):
                found.append(part["content"])
            for call in part.get("tool_calls") or []:
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    found += [v for v in (function.get("name"), function.get("arguments")) if isinstance(v, str)]
    return found


def answer_text(answer: bytes) -> str:
    """The text of a JSON answer, or of every event of an SSE answer."""
    stripped = answer.lstrip()
    if not stripped:
        return ""
    if not stripped.startswith(b"data:"):
        try:
            return "".join(_texts(orjson.loads(answer)))
        except orjson.JSONDecodeError:
            return ""
    parts: list[str] = []
    for line in answer.splitlines():
        data = line.removeprefix(b"data:").strip()
        if line.startswith(b"data:") and data and data != b"[DONE]":
            try:
                parts += _texts(orjson.loads(data))
            except orjson.JSONDecodeError:
                continue
    return "".join(parts)


def estimate(body: dict[str, Any], answer: bytes, model: str) -> Usage:
    """Estimated usage of a request (its body as the client sent it) and the answer it got."""
    prompt, completion = tokenizer.estimate_usage(body, answer_text(answer), model)
    return Usage(prompt, completion, prompt + completion)


def estimate_prompt_only(body: dict[str, Any], answer: bytes, model: str) -> Usage:
    """For embeddings: only the input counts."""
    prompt, _ = tokenizer.estimate_usage(body, "", model)
    return Usage(prompt, 0, prompt)
