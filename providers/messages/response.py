"""OpenAI chat completion answers -> Anthropic Messages answers, whole (``message``) or streamed
(``MessagesStream``, which reads what an adapter's chat stream translator hands out)."""

from __future__ import annotations

from typing import Any

import orjson

from providers.base import ProviderError, SSEBuffer, StreamTranslator, Usage

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                "content_filter": "refusal"}


def stop_reason(finish_reason: Any) -> str:
    return STOP_REASONS.get(finish_reason, "end_turn") if isinstance(finish_reason, str) else "end_turn"


def message_usage(usage: Usage | None) -> dict[str, int]:
    """Anthropic's usage: ``input_tokens`` excludes the tokens read from the prompt cache."""
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    return {"input_tokens": usage.prompt_tokens - cached, "output_tokens": usage.completion_tokens,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached}


def message_id(chat_id: Any) -> str:
    return f"msg_{chat_id}" if isinstance(chat_id, str) and chat_id and not chat_id.startswith("msg_") else (
        chat_id if isinstance(chat_id, str) and chat_id else "msg_gateway")


def _arguments(text: Any) -> dict[str, Any]:
    """A tool call's JSON arguments as the ``input`` object (malformed ones: an empty object)."""
    try:
        value = orjson.loads(text) if isinstance(text, str) and text else {}
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def message(chat: bytes, public_model: str, usage: Usage | None) -> bytes:
    """An Anthropic ``message`` for an OpenAI ``chat.completion`` (as an adapter's chat_result made it)."""
    data = orjson.loads(chat)
    choice = (data.get("choices") or [{}])[0]
    said = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if isinstance(said.get("content"), str) and said["content"]:
        content.append({"type": "text", "text": said["content"]})
    for call in said.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append({"type": "tool_use", "id": str(call.get("id") or ""), "name": str(function.get("name") or ""),
                        "input": _arguments(function.get("arguments"))})
    reason = stop_reason(choice.get("finish_reason"))
    if reason == "end_turn" and any(block["type"] == "tool_use" for block in content):
        reason = "tool_use"
    return orjson.dumps({"id": message_id(data.get("id")), "type": "message", "role": "assistant",
                         "model": public_model, "content": content, "stop_reason": reason, "stop_sequence": None,
                         "usage": message_usage(usage)})


def event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **data}) + b"\n\n"


class MessagesStream(StreamTranslator):
    """Anthropic's stream events for what an adapter's chat stream translator (``inner``) hands out.

    ``inner`` is asked for the usage chunk (include_usage), so ``message_delta`` carries the usage.
    Text and each tool call are content blocks in the order they start: a block is stopped when the
    next one starts, or when the answer ends.
    """

    def __init__(self, inner: StreamTranslator, public_model: str) -> None:
        self.inner = inner
        self.public_model = public_model
        self._sse = SSEBuffer()
        self._started = False
        self._index = -1
        self._block: tuple[str, Any] | None = None  # ("text", None) or ("tool", the chat tool call index)
        self._finish: Any = None
        self._saw_tool = False

    @property
    def usage(self) -> Usage | None:  # type: ignore[override]
        return self.inner.usage

    @property
    def first_token_seen(self) -> bool:  # type: ignore[override]
        return self.inner.first_token_seen

    def feed(self, data: bytes) -> bytes:
        return self._translate(self.inner.feed(data))

    def close(self) -> bytes:
        out = self._translate(self.inner.close())
        rest = self._sse.rest()
        return out + (self._events([rest]) if rest else b"")

    def _translate(self, data: bytes) -> bytes:
        return self._events(self._sse.events(data)) if data else b""

    def _events(self, events: list[bytes]) -> bytes:
        out: list[bytes] = []
        for raw in events:
            payload = raw.removeprefix(b"data:").strip()
            if payload == b"[DONE]":
                out.append(self._end())
                continue
            try:
                chunk = orjson.loads(payload)
            except orjson.JSONDecodeError:
                raise ProviderError(502, "The upstream sent a stream event that is not JSON.", "upstream_error",
                                    "upstream_bad_stream") from None
            if isinstance(chunk, dict):
                out.append(self._chunk(chunk))
        return b"".join(out)

    def _start(self, chunk: dict[str, Any]) -> bytes:
        if self._started:
            return b""
        self._started = True
        start = {"id": message_id(chunk.get("id")), "type": "message", "role": "assistant", "model": self.public_model,
                 "content": [], "stop_reason": None, "stop_sequence": None, "usage": message_usage(None)}
        return event("message_start", {"message": start}) + event("ping", {})

    def _stop_block(self) -> bytes:
        if self._block is None:
            return b""
        self._block = None
        return event("content_block_stop", {"index": self._index})

    def _open(self, block: tuple[str, Any], content_block: dict[str, Any]) -> bytes:
        out = self._stop_block()
        self._index += 1
        self._block = block
        return out + event("content_block_start", {"index": self._index, "content_block": content_block})

    def _chunk(self, chunk: dict[str, Any]) -> bytes:
        out = [self._start(chunk)]
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self._block != ("text", None):
                    out.append(self._open(("text", None), {"type": "text", "text": ""}))
                out.append(event("content_block_delta", {"index": self._index,
                                                         "delta": {"type": "text_delta", "text": text}}))
            for call in delta.get("tool_calls") or []:
                if not isinstance(call, dict):
                    continue
                key = ("tool", call.get("index", 0))
                function = call.get("function") or {}
                if self._block != key:
                    self._saw_tool = True
                    out.append(self._open(key, {"type": "tool_use", "id": str(call.get("id") or ""),
                                                "name": str(function.get("name") or ""), "input": {}}))
                if isinstance(function.get("arguments"), str) and function["arguments"]:
                    out.append(event("content_block_delta", {"index": self._index, "delta": {
                        "type": "input_json_delta", "partial_json": function["arguments"]}}))
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return b"".join(out)

    def _end(self) -> bytes:
        if self.finished:
            return b""
        self.finished = True
        reason = stop_reason(self._finish)
        if reason == "end_turn" and self._saw_tool:
            reason = "tool_use"
        out = self._start({}) + self._stop_block()
        return out + event("message_delta", {"delta": {"stop_reason": reason, "stop_sequence": None},
                                             "usage": message_usage(self.usage)}) + event("message_stop", {})
