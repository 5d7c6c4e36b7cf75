"""The Responses API on providers that speak it themselves (OpenAI; OpenAI-compatible servers that declare it).

The request goes as the client sent it (its ``model`` swapped, ``previous_response_id`` left out:
the gateway has already put the earlier turns into ``input``); the answer comes back unchanged,
read only for its usage, and a stream is forwarded event by event. Only when the client gave a
``previous_response_id`` are the response objects re-encoded, to say so again (the upstream never
saw it).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from providers.base import ChatResult, ProviderError, SSEBuffer, StreamTranslator
from providers.errors import reads_upstream
from providers.responses.response import usage_of
from providers.responses.stream import EventWriter

_TERMINAL = re.compile(rb'"type"\s*:\s*"(response\.(?:completed|incomplete|failed))"')
_FIRST_TOKEN = re.compile(rb'"type"\s*:\s*"response\.(?:output_text|function_call_arguments|refusal|'
                          rb'custom_tool_call_input|reasoning_summary_text|reasoning_text)\.delta"')
_ERROR = re.compile(rb'"type"\s*:\s*"error"')


def upstream_body(body: dict[str, Any], upstream_model: str) -> bytes:
    payload = {k: v for k, v in body.items() if k != "previous_response_id"}
    payload["model"] = upstream_model
    return orjson.dumps(payload)


@reads_upstream
def result(body: bytes, account: str, previous: str | None = None) -> ChatResult:
    """The upstream's response object as it came, once it is known to be one."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or data.get("object") != "response" or not isinstance(data.get("output"), list):
        raise ProviderError(502, f"The upstream '{account}' returned a response that is not a Responses object.")
    if previous:
        data["previous_response_id"] = previous
        body = orjson.dumps(data)
    return ChatResult(body, usage_of(data))


class PassthroughResponsesStream(StreamTranslator):
    """Forwards Responses SSE events as they come; reads the usage and final response from the last one."""

    def __init__(self, previous: str | None = None) -> None:
        self.previous = previous
        self._sse = SSEBuffer()
        self.answer: bytes | None = None
        self.last_sequence = -1

    def feed(self, data: bytes) -> bytes:
        return b"".join(self._event(event) for event in self._sse.events(data))

    def close(self) -> bytes:
        rest = self._sse.rest()
        return self._event(rest) if rest else b""

    def fail(self, error: ProviderError) -> bytes:
        writer = EventWriter()
        writer.sequence = self.last_sequence + 1
        return writer("error", code=error.code or "upstream_error", message=error.message, param=error.param)

    @reads_upstream
    def _event(self, event: bytes) -> bytes:
        if not self.first_token_seen and _FIRST_TOKEN.search(event):
            self.first_token_seen = True
        if b'"sequence_number"' in event:
            found = re.search(rb'"sequence_number"\s*:\s*(\d{1,12})', event)
            if found:
                self.last_sequence = int(found.group(1))
        if self.previous and b'"previous_response_id"' in event:
            event = self._with_previous(event)
        terminal = _TERMINAL.search(event) if b'"response.' in event else None
        if terminal is not None:
            payload = _data(event)
            response = payload.get("response") if isinstance(payload, dict) else None
            if isinstance(response, dict):
                self.usage = usage_of(response)
                if terminal.group(1) != b"response.failed":
                    self.answer = orjson.dumps(response)
                    self.finished = True
                else:
                    error = response.get("error") if isinstance(response.get("error"), dict) else {}
                    self.failed = ProviderError(502, str(error.get("message") or "The upstream response failed."),
                                                "upstream_error", str(error.get("code") or "upstream_error"))
                    self.finished = True
        elif _ERROR.search(event) and event.lstrip().startswith((b"event: error", b"data:")):
            payload = _data(event)
            if isinstance(payload, dict) and payload.get("type") == "error":
                self.failed = ProviderError(502, str(payload.get("message") or "The upstream failed."),
                                            "upstream_error", str(payload.get("code") or "upstream_error"))
                self.finished = True
        return event + b"\n\n"


    def _with_previous(self, event: bytes) -> bytes:
        payload = _data(event)
        if not isinstance(payload, dict) or not isinstance(payload.get("response"), dict):
            return event
        payload["response"]["previous_response_id"] = self.previous
        lines = [line for line in event.split(b"\n") if not line.startswith(b"data:")]
        return b"\n".join([*lines, b"data: " + orjson.dumps(payload)])


def _data(event: bytes) -> Any:
    lines = [line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:")]
    try:
        return orjson.loads(b"\n".join(lines)) if lines else None
    except orjson.JSONDecodeError:
        return None
