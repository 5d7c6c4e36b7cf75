"""Gemini answers -> OpenAI chat completions: whole (``completion``) or streamed (``GeminiStream``).

Gemini 3 models sign their function calls (``thoughtSignature``); the signature travels inside the
OpenAI tool call id (after ``.ts.``) so that a replayed call carries it back (see ``request.py``).
Thought parts are left out of the answer, and thought tokens count as output.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from providers.base import ProviderError, SSEBuffer, StreamTranslator, Usage, count
from providers.errors import reads_upstream
from providers.gemini.request import SIGNATURE_MARK

CONTENT_FILTERED = frozenset({
    "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION",
})


def finish_reason(reason: Any, called_tools: bool) -> str:
    """OpenAI's finish_reason for a Gemini ``finishReason``: a cut answer is "length", a blocked one "content_filter"."""
    if reason == "MAX_TOKENS":
        return "length"
    if reason in CONTENT_FILTERED:
        return "content_filter"
    return "tool_calls" if called_tools else "stop"


def usage_of(meta: Any) -> tuple[Usage, dict[str, Any]] | None:
    """The gateway's usage and OpenAI's usage object from ``usageMetadata`` (thoughts count as output)."""
    if not isinstance(meta, dict):
        return None
    prompt = count(meta.get("promptTokenCount")) + count(meta.get("toolUsePromptTokenCount"))
    thoughts = count(meta.get("thoughtsTokenCount"))
    completion = count(meta.get("candidatesTokenCount")) + thoughts
    total = count(meta.get("totalTokenCount")) or prompt + completion
    cached = count(meta.get("cachedContentTokenCount"))  # part of promptTokenCount
    document = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total,
                "prompt_tokens_details": {"cached_tokens": cached},
                "completion_tokens_details": {"reasoning_tokens": thoughts}}
    return Usage(prompt, completion, total, cached), document


# -- response ---------------------------------------------------------------------------------------

def _call_prefix(data: dict[str, Any]) -> str:
    """What makes this response's tool call ids unique: its responseId, else a random token."""
    response_id = re.sub(r"[^A-Za-z0-9]", "", str(data.get("responseId") or ""))[:24]
    return response_id or uuid.uuid4().hex[:16]


def _completion_id(data: dict[str, Any]) -> str:
    response_id = data.get("responseId")
    return f"chatcmpl-{response_id}" if isinstance(response_id, str) and response_id else f"chatcmpl-{uuid.uuid4().hex}"


def read_parts(candidate: dict[str, Any]) -> tuple[str, list[tuple[str, dict[str, Any], str | None]]]:
    """(answer text, [(function name, args, thought signature)]) of a candidate; thoughts are left out."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    text: list[str] = []
    calls: list[tuple[str, dict[str, Any], str | None]] = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict) or part.get("thought") is True:
            continue
        call = part.get("functionCall")
        if isinstance(call, dict):
            args = call.get("args")
            calls.append((str(call.get("name") or ""), args if isinstance(args, dict) else {},
                          part.get("thoughtSignature")))
        elif isinstance(part.get("text"), str):
            text.append(part["text"])
    return "".join(text), calls


def tool_call(prefix: str, number: int, name: str, args: dict[str, Any], signature: str | None) -> dict[str, Any]:
    call_id = f"call_{prefix}_{number}" + (f"{SIGNATURE_MARK}{signature}" if signature else "")
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": orjson.dumps(args).decode()}}


def _index(candidate: dict[str, Any], position: int) -> int:
    index = candidate.get("index")
    return index if isinstance(index, int) else position


def blocked(data: dict[str, Any]) -> bool:
    feedback = data.get("promptFeedback")
    return isinstance(feedback, dict) and bool(feedback.get("blockReason"))


def completion(data: dict[str, Any], public_model: str) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` for a ``GenerateContentResponse``."""
    prefix = _call_prefix(data)
    numbered = 0
    choices = []
    candidates = data.get("candidates")
    for position, candidate in enumerate(candidates if isinstance(candidates, list) else []):
        if not isinstance(candidate, dict):
            continue
        text, calls = read_parts(candidate)
        message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else ""), "refusal": None}
        if calls:
            message["tool_calls"] = [tool_call(prefix, numbered + k, *call) for k, call in enumerate(calls)]
            numbered += len(calls)
        choices.append({"index": _index(candidate, position), "message": message, "logprobs": None,
                        "finish_reason": finish_reason(candidate.get("finishReason"), bool(calls))})
    if not choices and blocked(data):  # the prompt itself was blocked: an empty, filtered answer
        choices.append({"index": 0, "message": {"role": "assistant", "content": "", "refusal": None},
                        "logprobs": None, "finish_reason": "content_filter"})
    document: dict[str, Any] = {"id": _completion_id(data), "object": "chat.completion", "created": int(time.time()),
                                "model": public_model, "choices": choices}
    usage = usage_of(data.get("usageMetadata"))
    if usage is not None:
        document["usage"] = usage[1]
    return document


# -- streaming --------------------------------------------------------------------------------------

class GeminiStream(StreamTranslator):
    """Gemini SSE (``data: <GenerateContentResponse>`` events, no terminator) to OpenAI chunks.

    The upstream stream is complete when its body ends after every candidate carried a
    ``finishReason`` (or the prompt was blocked); only then do the usage chunk and ``[DONE]`` follow.
    """

    def __init__(self, public_model: str, include_usage: bool,
                 to_error: Callable[[int, bytes], ProviderError]) -> None:
        self.model = public_model
        self.include_usage = include_usage
        self._to_error = to_error
        self._sse = SSEBuffer()
        self._id = ""
        self._prefix = ""
        self._created = int(time.time())
        self._calls = 0  # tool calls numbered across the response, as in the non-streamed answer
        self._started: dict[int, int] = {}  # candidate index -> its tool calls so far
        self._ended: set[int] = set()
        self._blocked = False
        self._usage_document: dict[str, Any] | None = None

    def feed(self, data: bytes) -> bytes:
        return b"".join(self._event(event) for event in self._sse.events(data))

    def close(self) -> bytes:
        rest = self._sse.rest()
        out = self._event(rest) if rest else b""
        if not (self._blocked or (self._started and self._ended >= self._started.keys())):
            return out
        self.finished = True
        if self.include_usage and self._usage_document is not None:
            out += self._chunk([], usage=self._usage_document)
        return out + b"data: [DONE]\n\n"

    @reads_upstream
    def _event(self, event: bytes) -> bytes:
        lines = [line[5:].removeprefix(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
        if not lines:
            return b""
        raw = b"\n".join(lines)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ProviderError(502, "The upstream sent a stream event that is not JSON.", "upstream_error",
                                "upstream_bad_stream") from None
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            code = data["error"].get("code")
            raise self._to_error(code if isinstance(code, int) else 500, raw)
        if not isinstance(data, dict):
            raise ProviderError(502, "The upstream sent a stream event that is not a response.", "upstream_error",
                                "upstream_bad_stream")
        if not self._id:
            self._id, self._prefix = _completion_id(data), _call_prefix(data)
        usage = usage_of(data.get("usageMetadata"))
        if usage is not None:  # every chunk repeats the running total: keep the last, never add
            self.usage, self._usage_document = usage
        out = []
        candidates = data.get("candidates")
        for position, candidate in enumerate(candidates if isinstance(candidates, list) else []):
            if isinstance(candidate, dict):
                out.append(self._candidate(_index(candidate, position), candidate))
        if not candidates and blocked(data):
            self._blocked = True
            for index in sorted(self._started.keys() - self._ended) or [0]:
                out.append(self._begin(index) + self._delta(index, {}, "content_filter"))
                self._ended.add(index)
        return b"".join(out)

    def _candidate(self, index: int, candidate: dict[str, Any]) -> bytes:
        out = self._begin(index)
        text, calls = read_parts(candidate)
        if text:
            self.first_token_seen = True
            out += self._delta(index, {"content": text})
        if calls:
            self.first_token_seen = True
            deltas = []
            for call in calls:
                deltas.append({"index": self._started[index], **tool_call(self._prefix, self._calls, *call)})
                self._started[index] += 1
                self._calls += 1
            out += self._delta(index, {"tool_calls": deltas})
        if candidate.get("finishReason") and index not in self._ended:
            self._ended.add(index)
            out += self._delta(index, {}, finish_reason(candidate["finishReason"], self._started[index] > 0))
        return out

    def _begin(self, index: int) -> bytes:
        if index in self._started:
            return b""
        self._started[index] = 0
        return self._delta(index, {"role": "assistant", "content": ""})

    def _delta(self, index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return self._chunk([{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}])

    def _chunk(self, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        chunk: dict[str, Any] = {"id": self._id or f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
                                 "created": self._created, "model": self.model, "choices": choices}
        if usage is not None:
            chunk["usage"] = usage
        return b"data: " + orjson.dumps(chunk) + b"\n\n"
