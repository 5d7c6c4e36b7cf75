"""What the gateway checks in an Anthropic Messages body before routing it, and the token count it
gives itself for models whose upstream cannot count (``count_tokens`` on a translated deployment)."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import invalid_request
from gateway.usage.estimate import messages_prompt
from providers.base import ChatResult, Usage

# "system" turns: instructions between the turns (what Claude Code sends beside the top-level system prompt).
ROLES = ("user", "assistant", "system")


def _turns(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if messages is None:
        raise invalid_request("messages: Field required", param="messages", code="missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise invalid_request("messages: must be a non-empty array of messages.", param="messages",
                              code="invalid_type")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid_request(f"messages.{i}: must be an object.", param=f"messages.{i}", code="invalid_type")
        if message.get("role") not in ROLES:
            raise invalid_request(f"messages.{i}.role: Input should be 'user', 'assistant' or 'system'",
                                  param=f"messages.{i}.role", code="invalid_value")
        content = message.get("content")
        if not isinstance(content, str | list):
            raise invalid_request(f"messages.{i}.content: must be a string or an array of content blocks.",
                                  param=f"messages.{i}.content", code="invalid_type")
        if isinstance(content, list) and not all(isinstance(block, dict) and isinstance(block.get("type"), str)
                                                 for block in content):
            raise invalid_request(f"messages.{i}.content: every content block must be an object with a 'type'.",
                                  param=f"messages.{i}.content", code="invalid_type")
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise invalid_request("system: must be a string or an array of text blocks.", param="system",
                              code="invalid_type")
    for name in ("tools", "stop_sequences"):
        if body.get(name) is not None and not isinstance(body[name], list):
            raise invalid_request(f"{name}: must be an array.", param=name, code="invalid_type")
    if not all(isinstance(stop, str) for stop in body.get("stop_sequences") or []):
        raise invalid_request("stop_sequences: must be an array of strings.", param="stop_sequences",
                              code="invalid_type")


def validate_messages(body: dict[str, Any]) -> None:
    """A Messages request: turns, and ``max_tokens`` (which the API requires)."""
    _turns(body)
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise invalid_request("max_tokens: Field required", param="max_tokens", code="missing_required_parameter")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise invalid_request("max_tokens: must be a positive integer.", param="max_tokens", code="invalid_value")


def validate_count_tokens(body: dict[str, Any]) -> None:
    """A token count request: the turns of a Messages request (no ``max_tokens``, never streamed)."""
    _turns(body)
    if body.get("stream"):
        raise invalid_request("stream: token counts are not streamed.", param="stream", code="invalid_value")


def counted_locally(body: dict[str, Any], model: str) -> ChatResult:
    """``{"input_tokens": N}`` from the gateway's own tokenizer; it costs nothing (no tokens used)."""
    count = messages_prompt(body, model)
    return ChatResult(orjson.dumps({"input_tokens": count.tokens}), Usage())
