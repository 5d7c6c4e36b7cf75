"""OpenAI and any server that speaks its wire format (vLLM, Ollama, Groq, OpenRouter, ...).

Requests and answers are already in the client's format, so this adapter only swaps the model
id, asks for usage on streams, and reads usage on the way back without re-encoding anything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from providers.base import (
    BOOL,
    EXTRA_HEADERS,
    Adapter,
    ChatResult,
    OptionSpec,
    ProviderError,
    StreamTranslator,
    UpstreamRequest,
    Usage,
)
from providers.errors import reads_upstream
from providers.parameters import ParameterPolicy
from providers.responses.passthrough import upstream_body

_TOKEN_DELTA = re.compile(rb'"(?:content|arguments|refusal|text)"\s*:\s*"[^"]')


class PassthroughStream(StreamTranslator):
    """Forwards OpenAI SSE events byte for byte; reads only the usage chunk and the first token.

    The usage chunk (``choices: []``) that the gateway asked for is dropped unless the client
    asked for it too. Every event is checked before it goes on: an event whose data is not a JSON
    object, a line that is no SSE field (an HTML page, a JSON body) or an upstream's own error
    event raises a ``ProviderError`` (which the gateway sends as its error event), so a client never
    gets what its SDK cannot parse, nor an upstream failure that looks like an answer.
    """

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage
        self._pending = b""
        self._error: ProviderError | None = None  # raised at the next call: the events before it go on first

    def feed(self, data: bytes) -> bytes:
        self._raise_pending()
        buf = self._pending + data
        if b"\r\n" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        end = buf.rfind(b"\n\n")
        if end < 0:
            self._pending = buf
            return b""
        complete, self._pending = buf[: end + 2], buf[end + 2 :]
        return self._events(complete.split(b"\n\n"))

    def close(self) -> bytes:
        self._raise_pending()
        rest, self._pending = self._pending.strip(), b""
        out = self._events([rest])
        self._raise_pending()
        return out

    def _events(self, events: list[bytes]) -> bytes:
        out = []
        for event in events:
            try:
                if event and self._keep(event):
                    out.append(event + b"\n\n")
            except ProviderError as exc:
                if not out:
                    raise
                self._error = exc
                break
        return b"".join(out)

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    @reads_upstream
    def _keep(self, event: bytes) -> bool:
        data = _event_data(event)
        if data is None:  # comments (keep-alives) and fields without data
            return True
        if data == b"[DONE]":
            self.finished = True
            return True
        if self.finished:  # nothing follows [DONE]
            return False
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            chunk = None
        if not isinstance(chunk, dict):
            raise ProviderError(502, "The upstream sent a stream event that is not a JSON object.",
                                "upstream_error", "upstream_malformed")
        if chunk.get("error"):  # (as the SDKs read it: an "error": null is no error)
            raise stream_error(chunk["error"])
        if not self.first_token_seen and _TOKEN_DELTA.search(data):
            self.first_token_seen = True
        if "usage" in chunk:
            usage = Usage.from_openai(chunk.get("usage"))
            if usage is not None:
                self.usage = usage
            if not chunk.get("choices") and not self.include_usage:
                return False
        return True


# The lines of an SSE event: a field with a value, a field alone, or a comment (starting with ":").
_SSE_FIELDS = (b"data:", b"event:", b"id:", b"retry:", b":")
_SSE_NAMES = frozenset({b"", b"data", b"event", b"id", b"retry"})


def _event_data(event: bytes) -> bytes | None:
    """An SSE event's data (its data lines joined), None if it has none; a line that is no SSE field
    means the body is not an event stream."""
    data: list[bytes] = []
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[6:] if line[5:6] == b" " else line[5:])
        elif not line.startswith(_SSE_FIELDS) and line.strip() not in _SSE_NAMES:
            raise ProviderError(502, "The upstream answered a stream request with something that is not an "
                                "event stream.", "upstream_error", "upstream_malformed")
    return b"\n".join(data).strip() if data else None


def stream_error(error: Any) -> ProviderError:
    """An upstream's ``{"error": {...}}`` event: its message and type, as a 502 (the stream had a 200)."""
    error = error if isinstance(error, dict) else {"message": error}
    message = error.get("message")
    text = message[:500] if isinstance(message, str) and message else "The upstream reported an error mid-stream."
    type_ = error.get("type")
    code = error.get("code")
    return ProviderError(502, text, type_[:100] if isinstance(type_, str) and type_ else "upstream_error",
                         code[:100] if isinstance(code, str) and code else "upstream_stream_error")


class OpenAIAdapter(Adapter):
    kind = "openai"
    label = "OpenAI"
    default_base_url = "https://api.openai.com/v1"
    # The upstream speaks the client's format: every field goes as it came, and the upstream judges it.
    chat_parameters = ParameterPolicy(unknown=None)
    option_specs = (
        OptionSpec("organization", "Organization", "Sent as the OpenAI-Organization header (an organization id, "
                   "org-...). Empty: the key's default organization."),
        OptionSpec("project", "Project", "Sent as the OpenAI-Project header (a project id, proj_...). Empty: the "
                   "key's default project."),
        OptionSpec("stream_usage", "Ask streams for their usage", "Adds stream_options.include_usage to streamed "
                   "requests, so they are logged with their tokens and cost. Untick only for a server that "
                   "refuses the field.", BOOL, default=True),
        EXTRA_HEADERS,
    )

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.account.api_key:
            headers["Authorization"] = f"Bearer {self.account.api_key}"
        options = self.account.options
        if options.get("organization"):
            headers["OpenAI-Organization"] = str(options["organization"])
        if options.get("project"):
            headers["OpenAI-Project"] = str(options["project"])
        extra = options.get("headers")
        if isinstance(extra, dict):
            headers.update({str(k): str(v) for k, v in extra.items()})
        return headers

    def _post(self, path: str, body: dict[str, Any], upstream_model: str) -> UpstreamRequest:
        payload = dict(body)
        payload["model"] = upstream_model
        if payload.get("stream") and self.account.options.get("stream_usage", True):
            payload["stream_options"] = {**(payload.get("stream_options") or {}), "include_usage": True}
        return UpstreamRequest("POST", f"{self.base_url}/{path}", self.headers(), orjson.dumps(payload))

    def _checked(self, body: bytes, key: str, what: str) -> ChatResult:
        """The body as it came (never re-encoded), once it is known to be what was asked for."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise ProviderError(502, f"The upstream '{self.account.name}' returned a response that is not {what}.",
                                "upstream_error", "upstream_malformed")
        return ChatResult(body, Usage.from_openai(data.get("usage")))

    def chat_request(self, body: dict[str, Any], upstream_model: str, max_output_tokens: int | None = None) -> UpstreamRequest:
        return self._post("chat/completions", body, upstream_model)

    @reads_upstream
    def chat_result(self, body: bytes, public_model: str, context: Mapping[str, Any] | None = None) -> ChatResult:
        return self._checked(body, "choices", "a chat completion")

    def chat_stream(self, public_model: str, include_usage: bool, context: Mapping[str, Any] | None = None
                    ) -> StreamTranslator:
        return PassthroughStream(include_usage)

    def completion_request(self, body: dict[str, Any], upstream_model: str, max_output_tokens: int | None = None) -> UpstreamRequest:
        return self._post("completions", body, upstream_model)

    def completion_result(self, body: bytes, public_model: str, request: dict[str, Any],
                          context: Mapping[str, Any] | None = None) -> ChatResult:
        return self._checked(body, "choices", "a text completion")

    def completion_stream(self, public_model: str, include_usage: bool, request: dict[str, Any],
                          context: Mapping[str, Any] | None = None) -> StreamTranslator:
        return PassthroughStream(include_usage)

    def embeddings_request(self, body: dict[str, Any], upstream_model: str) -> UpstreamRequest:
        return self._post("embeddings", body, upstream_model)

    def embeddings_result(self, body: bytes, public_model: str, request: dict[str, Any]) -> ChatResult:
        return self._checked(body, "data", "an embedding list")

    def models_request(self) -> UpstreamRequest:
        return UpstreamRequest("GET", f"{self.base_url}/models", self.headers())

    def serves_responses(self) -> bool:
        """Whether the upstream has the Responses API itself (providers.responses passes requests through)."""
        return True

    def responses_request(self, body: dict[str, Any], upstream_model: str) -> UpstreamRequest:
        return UpstreamRequest("POST", f"{self.base_url}/responses", self.headers(),
                               upstream_body(body, upstream_model))


class OpenAICompatibleAdapter(OpenAIAdapter):
    """Any OpenAI-compatible server; the base URL is required, the key optional."""

    kind = "openai_compatible"
    label = "OpenAI-compatible"
    default_base_url = ""
    requires_api_key = False
    option_specs = (*OpenAIAdapter.option_specs,
                    OptionSpec("responses", "Has the Responses API", "The server answers /responses itself (e.g. "
                               "recent vLLM): /v1/responses requests are passed through. Unticked: they are "
                               "translated through its chat completions.", BOOL, default=False))

    def serves_responses(self) -> bool:
        # Most OpenAI-compatible servers have only chat completions: Responses go through chat unless
        # the account's options say ``"responses": true``.
        return self.account.options.get("responses") is True
