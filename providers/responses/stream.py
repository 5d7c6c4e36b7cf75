"""A chat completion stream (OpenAI chunks, from any adapter's chat translator) as Responses API events.

The event sequence is OpenAI's: ``response.created``, ``response.in_progress``; per output item
``response.output_item.added``, for a message ``response.content_part.added``, the
``response.output_text.delta`` events, ``response.output_text.done`` and
``response.content_part.done``, for a function call the
``response.function_call_arguments.delta`` events and ``.done``; ``response.output_item.done``;
and last ``response.completed`` (``response.incomplete`` when the output limit cut the answer)
with the whole response and its usage. Every event has ``type`` and ``sequence_number``. An
error the upstream reports inside its stream, or a failure of the stream itself, ends it with
``response.failed``: a client never sees a stream that just stops.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from providers.base import ProviderError, SSEBuffer, StreamTranslator
from providers.errors import reads_upstream
from providers.responses.request import new_id
from providers.responses.response import call_item, finish, message_item, output_text, skeleton

# Error codes a ``response.failed`` may carry (the schema's ResponseErrorCode): others read as server_error.
_FAILED_CODES = frozenset({"server_error", "rate_limit_exceeded", "invalid_prompt"})


def failed_code(status: int, code: str | None) -> str:
    if code in _FAILED_CODES:
        return str(code)
    return "rate_limit_exceeded" if status == 429 else "server_error"


class EventWriter:
    """Numbers and encodes Responses stream events (``event:`` line and ``data:`` line)."""

    def __init__(self) -> None:
        self.sequence = 0

    def __call__(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class ResponsesStream(StreamTranslator):
    """Wraps an adapter's chat stream translator; ``answer`` is the final response object (JSON) once finished."""

    def __init__(self, chat: StreamTranslator, request: Mapping[str, Any], context: Mapping[str, Any],
                 model: str) -> None:
        self.chat = chat
        self.names = context.get("names") or {}
        self.response = skeleton(request, context, model)
        self.answer: bytes | None = None
        self.event = EventWriter()
        self._sse = SSEBuffer()
        self._started = False
        self._message: dict[str, Any] | None = None  # the open message item and its text so far
        self._calls: dict[int, dict[str, Any]] = {}  # chat tool-call index -> its open item
        self._finish_reason: Any = None
        self._ended = False
        self._pending_start = b""  # created/in_progress events not sent yet because the event that came failed

    def feed(self, data: bytes) -> bytes:
        return self._convert(self.chat.feed(data))

    def close(self) -> bytes:
        out = self._convert(self.chat.close())
        rest = self._sse.rest()
        return out + (self._event(rest) if rest else b"")

    def fail(self, error: ProviderError) -> bytes:
        """``response.failed`` for a failure of the stream after it started."""
        if self._ended:
            return b""
        started, self._pending_start = self._pending_start, b""
        return started + self._start() + self._failed(error.status, error.code, error.message)

    def _convert(self, chunk: bytes) -> bytes:
        self.usage, self.first_token_seen = self.chat.usage, self.chat.first_token_seen
        if not chunk:
            return b""
        return b"".join(self._event(event) for event in self._sse.events(chunk))

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return self.event("response.created", response=self.response) + self.event(
            "response.in_progress", response=self.response)

    @reads_upstream
    def _event(self, event: bytes) -> bytes:
        if self._ended:
            return b""
        data = event.strip().removeprefix(b"data:").strip()
        out = self._start()
        if data == b"[DONE]":
            return out + self._complete()
        payload = orjson.loads(data)
        if "error" in payload:
            # An error inside the stream: raised, so that the call is logged as failed; the relay then
            # asks ``fail`` for the response.failed event.
            error = payload["error"] if isinstance(payload["error"], dict) else {"message": str(payload["error"])}
            self._pending_start = out
            raise ProviderError(502, str(error.get("message") or "The upstream failed mid-stream.")[:1000],
                                "upstream_error", str(error["code"]) if error.get("code") else "upstream_error")
        for choice in payload.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                out += self._text(delta["content"])
            for call in delta.get("tool_calls") or []:
                out += self._call(call)
            if choice.get("finish_reason") is not None:
                self._finish_reason = choice["finish_reason"]
        return out

    def _text(self, text: str) -> bytes:
        out = b""
        if self._message is None:
            item = message_item(new_id("msg"), "", status="in_progress")
            item["content"] = []
            self._message = {"item": item, "index": len(self.response["output"]), "text": []}
            self.response["output"].append(item)
            out += self.event("response.output_item.added", output_index=self._message["index"], item=item)
            out += self.event("response.content_part.added", item_id=item["id"], output_index=self._message["index"],
                              content_index=0, part=output_text(""))
        self._message["text"].append(text)
        return out + self.event("response.output_text.delta", item_id=self._message["item"]["id"],
                                output_index=self._message["index"], content_index=0, delta=text, logprobs=[])

    def _close_message(self) -> bytes:
        message, self._message = self._message, None
        if message is None:
            return b""
        item, index, text = message["item"], message["index"], "".join(message["text"])
        part = output_text(text)
        item["content"], item["status"] = [part], "completed"
        return (self.event("response.output_text.done", item_id=item["id"], output_index=index, content_index=0,
                           text=text, logprobs=[])
                + self.event("response.content_part.done", item_id=item["id"], output_index=index, content_index=0,
                             part=part)
                + self.event("response.output_item.done", output_index=index, item=item))

    def _call(self, call: Mapping[str, Any]) -> bytes:
        index = call.get("index", 0)
        function = call.get("function") or {}
        out = b""
        state = self._calls.get(index)
        if state is None:
            out += self._close_message()
            item = call_item(str(call.get("id") or new_id("call")), str(function.get("name") or ""), "",
                             self.names, status="in_progress")
            state = {"item": item, "index": len(self.response["output"]), "arguments": [],
                     "name": str(function.get("name") or "")}
            self._calls[index] = state
            self.response["output"].append(item)
            out += self.event("response.output_item.added", output_index=state["index"], item=item)
        arguments = function.get("arguments")
        if arguments:
            state["arguments"].append(arguments)
            if state["item"]["type"] == "function_call":  # a custom tool's input is known only at its end
                out += self.event("response.function_call_arguments.delta", item_id=state["item"]["id"],
                                  output_index=state["index"], delta=arguments)
        return out

    def _close_calls(self) -> bytes:
        out = b""
        for state in self._calls.values():
            old = state["item"]
            item = call_item(old["call_id"], state["name"], "".join(state["arguments"]), self.names, item_id=old["id"])
            self.response["output"][state["index"]] = item
            if item["type"] == "function_call":
                out += self.event("response.function_call_arguments.done", item_id=item["id"],
                                  output_index=state["index"], name=item["name"], arguments=item["arguments"])
            else:
                out += self.event("response.custom_tool_call_input.delta", item_id=item["id"],
                                  output_index=state["index"], delta=item["input"])
                out += self.event("response.custom_tool_call_input.done", item_id=item["id"],
                                  output_index=state["index"], input=item["input"])
            out += self.event("response.output_item.done", output_index=state["index"], item=item)
        self._calls = {}
        return out

    def _complete(self) -> bytes:
        out = self._close_message() + self._close_calls()
        self.usage = self.chat.usage
        response = finish(self.response, self._finish_reason, self.usage)
        self.answer = orjson.dumps(response)
        self._ended = self.finished = True
        kind = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
        return out + self.event(kind, response=response)

    def _failed(self, status: int, code: str | None, message: str) -> bytes:
        self._ended = self.finished = True
        self.usage = self.chat.usage
        response = self.response
        if self._message is not None:  # the text sent before the failure, as an incomplete message
            item = self._message["item"]
            item["content"], item["status"] = [output_text("".join(self._message["text"]))], "incomplete"
        for state in self._calls.values():
            state["item"]["status"] = "incomplete"
            if state["item"]["type"] == "function_call":
                state["item"]["arguments"] = "".join(state["arguments"])
        response["status"] = "failed"
        response["error"] = {"code": failed_code(status, code), "message": message}
        return self.event("response.failed", response=response)
