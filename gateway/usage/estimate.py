"""Usage for answers whose provider reported none: the answer's text, counted with gateway.usage.tokenizer."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.usage import tokenizer
from providers.base import ProviderError, Usage
from providers.messages.request import chat_messages, chat_tools


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


# -- Anthropic's Messages API: the prompt counted as the chat messages it stands for ----------------

def _message_texts(payload: Any) -> list[str]:
    """The generated text in one Messages answer or stream event (text, tool input, their deltas)."""
    if not isinstance(payload, dict):
        return []
    found: list[str] = []
    for block in payload.get("content") or []:
        if isinstance(block, dict):
            if isinstance(block.get("text"), str):
                found.append(block["text"])
            elif block.get("type") == "tool_use":
                found += [block.get("name") or "", orjson.dumps(block.get("input") or {}).decode()]
    delta = payload.get("delta")
    if isinstance(delta, dict):
        found += [v for v in (delta.get("text"), delta.get("partial_json")) if isinstance(v, str)]
    return found


def messages_answer_text(answer: bytes) -> str:
    """The text of a Messages answer, whole or as stream events."""
    if not answer.lstrip().startswith(b"event:") and not answer.lstrip().startswith(b"data:"):
        try:
            return "".join(_message_texts(orjson.loads(answer)))
        except orjson.JSONDecodeError:
            return ""
    parts: list[str] = []
    for line in answer.splitlines():
        if line.startswith(b"data:"):
            try:
                parts += _message_texts(orjson.loads(line[5:]))
            except orjson.JSONDecodeError:
                continue
    return "".join(parts)


def messages_prompt(body: dict[str, Any], model: str) -> tokenizer.Count:
    """The prompt tokens of a Messages body (system, turns, tools), counted as chat messages."""
    try:
        messages = chat_messages(body, "gateway")
        tools = chat_tools(body["tools"], "gateway") if isinstance(body.get("tools"), list) else None
    except ProviderError:  # a block a chat model has no counterpart for: counted as the plain JSON it is
        return tokenizer.count_text(model, orjson.dumps(body.get("messages")).decode())
    count = tokenizer.count_messages(model, messages, tools)
    return tokenizer.Count(count.tokens, False, count.method.replace("tiktoken:", "estimate:"))


def estimate_messages(body: dict[str, Any], answer: bytes, model: str) -> Usage:
    """Estimated usage of a Messages request and the answer it got (whole or streamed)."""
    prompt = messages_prompt(body, model).tokens
    text = messages_answer_text(answer)
    completion = tokenizer.count_text(model, text).tokens if text else 0
    return Usage(prompt, completion, prompt + completion)
