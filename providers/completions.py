"""Legacy text completions on chat-only providers: a prompt becomes one user message, and the chat
answer (whole or streamed) is translated back into OpenAI's ``text_completion`` shape.

``ChatOnlyAdapter`` is the base of the adapters whose provider has only a chat interface.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from providers.base import Adapter, ChatResult, SSEBuffer, StreamTranslator, UpstreamRequest
from providers.errors import reads_upstream
from providers.parameters import ParameterPolicy, Refuse, other_than, refusal

# The completion-only fields. What a chat model cannot honour gets a 400 naming it; every other
# field goes on to the chat request, where the provider's chat policy judges it.
COMPLETION_PARAMETERS = ParameterPolicy(
    mapped=frozenset({"prompt", "echo", "stream_options"}),
    refused={
        "suffix": Refuse(other_than("", 0), "it only has a chat interface."),
        "logprobs": Refuse(other_than("", 0), "it only has a chat interface."),
        "best_of": Refuse(other_than(1), "it cannot generate and rank several answers.",
                          "A value of 'best_of' other than 1"),
    },
    unknown=None,
)


def single_prompt(body: dict[str, Any], provider: str) -> str:
    """The one prompt string a chat-only provider can answer."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise refusal(provider, "prompt", "it takes exactly one prompt string per request (no token arrays or "
                      "batches); send one request per prompt.", subject="A 'prompt' that is not one string")
    return prompt


def chat_body(body: dict[str, Any], provider: str) -> dict[str, Any]:
    """The chat request equivalent to a completion request, or a 400 for what it cannot express."""
    COMPLETION_PARAMETERS.check(body, provider)
    prompt = single_prompt(body, provider)
    chat = COMPLETION_PARAMETERS.unknown_fields(body)
    chat["messages"] = [{"role": "user", "content": prompt}]
    if body.get("stream"):
        chat["stream_options"] = body.get("stream_options") or {}
    return chat


def echo_prefix(body: dict[str, Any]) -> str:
    return body["prompt"] if body.get("echo") and isinstance(body.get("prompt"), str) else (
        body["prompt"][0] if body.get("echo") and isinstance(body.get("prompt"), list) else "")


def _completion_id(chat_id: Any) -> str:
    text = str(chat_id or "")
    return "cmpl-" + (text.removeprefix("chatcmpl-") or str(int(time.time() * 1000)))


def text_completion(chat: bytes, echo: str = "") -> bytes:
    """A ``chat.completion`` body as a ``text_completion`` body."""
    data = orjson.loads(chat)
    choices = [
        {"text": echo + ((c.get("message") or {}).get("content") or ""), "index": c.get("index", i),
         "logprobs": None, "finish_reason": _finish(c.get("finish_reason"))}
        for i, c in enumerate(data.get("choices") or [])
    ]
    out = {"id": _completion_id(data.get("id")), "object": "text_completion", "created": data.get("created"),
           "model": data.get("model"), "choices": choices}
    if data.get("usage") is not None:
        out["usage"] = data["usage"]
    return orjson.dumps(out)


def _finish(reason: Any) -> str | None:
    # text_completion knows stop, length and content_filter; a tool call cannot happen without tools.
    return reason if reason in (None, "stop", "length", "content_filter") else "stop"


class CompletionStream(StreamTranslator):
    """Wraps a chat stream translator and rewrites its OpenAI chat chunks as text_completion chunks."""

    def __init__(self, chat: StreamTranslator, echo: str = "") -> None:
        self.chat = chat
        self.echo = echo
        self._echoed: set[int] = set()  # choices whose text already starts with the echoed prompt
        self._sse = SSEBuffer()

    def feed(self, data: bytes) -> bytes:
        return self._convert(self.chat.feed(data))

    def close(self) -> bytes:
        out = self._convert(self.chat.close())
        rest = self._sse.rest()
        return out + (self._event(rest) if rest else b"")

    def _sync(self) -> None:
        self.usage, self.first_token_seen, self.finished = self.chat.usage, self.chat.first_token_seen, self.chat.finished

    def _convert(self, chunk: bytes) -> bytes:
        self._sync()
        if not chunk:
            return b""
        return b"".join(self._event(event) for event in self._sse.events(chunk))

    @reads_upstream
    def _event(self, event: bytes) -> bytes:
        data = event.strip().removeprefix(b"data:").strip()
        if data == b"[DONE]":
            return b"data: [DONE]\n\n"
        payload = orjson.loads(data)
        if "error" in payload:
            return b"data: " + data + b"\n\n"
        choices = []
        for i, c in enumerate(payload.get("choices") or []):
            delta = c.get("delta") or {}
            text = delta.get("content") or ""
            index = c.get("index", i)
            if self.echo and "role" in delta and index not in self._echoed:
                text = self.echo + text
                self._echoed.add(index)
            if not text and c.get("finish_reason") is None and "role" in delta:
                continue
            choices.append({"text": text, "index": index, "logprobs": None,
                            "finish_reason": _finish(c.get("finish_reason"))})
        if not choices and payload.get("usage") is None:
            return b""
        out = {"id": _completion_id(payload.get("id")), "object": "text_completion", "created": payload.get("created"),
               "model": payload.get("model"), "choices": choices}
        if payload.get("usage") is not None:  # chat chunks may carry "usage": null; CompletionUsage is an object
            out["usage"] = payload["usage"]
        return b"data: " + orjson.dumps(out) + b"\n\n"


class ChatOnlyAdapter(Adapter):
    """An adapter whose provider has only a chat interface: ``/completions`` goes through its chat methods."""

    def completion_request(self, body: dict[str, Any], upstream_model: str, max_output_tokens: int | None = None
                           ) -> UpstreamRequest:
        return self.chat_request(chat_body(body, self.label), upstream_model, max_output_tokens)

    def completion_result(self, body: bytes, public_model: str, request: dict[str, Any],
                          context: Mapping[str, Any] | None = None) -> ChatResult:
        chat = self.chat_result(body, public_model, context)
        return ChatResult(text_completion(chat.body, echo_prefix(request)), chat.usage)

    def completion_stream(self, public_model: str, include_usage: bool, request: dict[str, Any],
                          context: Mapping[str, Any] | None = None) -> StreamTranslator:
        return CompletionStream(self.chat_stream(public_model, include_usage, context), echo_prefix(request))
