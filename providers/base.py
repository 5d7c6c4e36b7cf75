"""The one small interface every provider adapter implements: pure translation, no I/O.

The gateway hands an adapter the client's OpenAI-shaped request; the adapter says what HTTP
request to send upstream (``UpstreamRequest``), and turns what comes back — a body, a stream of
bytes, an error — into OpenAI's shapes. Sending is the gateway's job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from providers.errors import ProviderError  # also imported from here: the adapters' interface names it
from providers.parameters import ParameterPolicy, invalid

# Masked or whole keys that upstream error messages echo back: "sk-...abcd", "AIza...".
_KEY_LIKE = re.compile(r"\b(?:sk|rk|pk|AIza)[-_][-_.*A-Za-z0-9]{3,}|\bAIza[-_A-Za-z0-9]{8,}")


@dataclass(frozen=True)
class Account:
    """What an adapter knows about the provider account it speaks for."""

    name: str
    kind: str
    base_url: str
    api_key: str
    options: dict[str, Any] = field(default_factory=dict)
    connect_timeout: float = 10.0
    read_timeout: float = 300.0  # between chunks, once the answer has started
    first_byte_timeout: float = 120.0  # from sending the request to the answer's first bytes


TEXT, BOOL, HEADERS = "text", "bool", "headers"  # the kinds of value an account option holds


@dataclass(frozen=True)
class OptionSpec:
    """One kind-specific setting of a provider account (a key of its ``options``), as an adapter class
    declares it: the admin builds a form field from it and the configuration file checks it.

    ``type``: ``TEXT`` (a string), ``BOOL`` (true or false) or ``HEADERS`` (a mapping of extra HTTP
    header names to values). ``default`` is what the adapter uses when the key is absent.
    """

    name: str
    label: str
    help: str = ""
    type: str = TEXT
    required: bool = False
    default: Any = None

    def is_missing(self, options: Mapping[str, Any]) -> bool:
        """Whether ``options`` lack a value for this option (absent, empty, or only spaces)."""
        value = options.get(self.name)
        return value is None or (isinstance(value, str) and not value.strip()) or value in ({}, [])

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this option's type (None: nothing)."""
        if value is None:
            return None
        if self.type == BOOL and not isinstance(value, bool):
            return "must be true or false"
        if self.type == HEADERS and not (isinstance(value, Mapping) and all(isinstance(k, str) for k in value)):
            return "must be a mapping of header names to values"
        if self.type == TEXT and not isinstance(value, str):
            return "must be a string (quote a value that looks like a number)"
        return None


# Several kinds send extra headers an account sets (a proxy's or a gateway's own, say).
EXTRA_HEADERS = OptionSpec("headers", "Extra headers", "Added to every request to this account (they win over "
                           "the gateway's own of the same name).", HEADERS)


@dataclass
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None
    # What reading the answer needs to know about this request (Workers AI: the output limit sent).
    # The gateway hands it back to the result and stream methods: adapters keep no state per call.
    context: dict[str, Any] = field(default_factory=dict)


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0  # the part of prompt_tokens read from the provider's prompt cache

    @classmethod
    def from_openai(cls, data: Any) -> Usage | None:
        if not isinstance(data, dict):
            return None
        prompt = count(data.get("prompt_tokens"))
        completion = count(data.get("completion_tokens"))
        details = data.get("prompt_tokens_details")
        cached = count(details.get("cached_tokens")) if isinstance(details, dict) else 0
        return cls(prompt, completion, count(data.get("total_tokens")) or prompt + completion, cached)


MAX_COUNT = 2**53  # token counts beyond this are not counts (and would not fit a log column)


def count(value: Any) -> int:
    """A token count from an upstream's usage (missing: 0). Anything but a non-negative number means the
    answer is malformed: a 502, since costs and limits are computed from it."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_COUNT:
        raise ProviderError(502, f"The upstream reported a token count that is not a number: {str(value)[:40]!r}.",
                            "upstream_error", "upstream_malformed")
    return int(value)


@dataclass
class ChatResult:
    """A complete (non-streamed) answer, already in OpenAI's shape."""

    body: bytes
    usage: Usage | None


class SSEBuffer:
    """Collects stream bytes and hands out complete SSE events (blank-line separated, CRLF normalised)."""

    def __init__(self) -> None:
        self._pending = b""

    def events(self, data: bytes) -> list[bytes]:
        buf = self._pending + data
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        end = buf.rfind(b"\n\n")
        if end < 0:
            self._pending = buf
            return []
        complete, self._pending = buf[:end], buf[end + 2 :]
        return [event for event in complete.split(b"\n\n") if event.strip()]

    def rest(self) -> bytes:
        """What is left when the stream ends: an event that lacked its final blank line, if any."""
        rest, self._pending = self._pending.strip(), b""
        return rest


class StreamTranslator:
    """Turns upstream stream bytes into OpenAI SSE bytes, and notes usage and first token."""

    usage: Usage | None = None
    first_token_seen: bool = False
    finished: bool = False  # the upstream said the stream is complete
    # The upstream ended the stream with a failure in its API's own shape, which went to the client as
    # it came (a Responses ``response.failed``): the call is logged as failed.
    failed: ProviderError | None = None

    def feed(self, data: bytes) -> bytes:
        raise NotImplementedError

    def close(self) -> bytes:
        """Called when the upstream body ends; returns any final bytes for the client."""
        return b""

    def fail(self, error: ProviderError) -> bytes:
        """The event that ends the client's stream when it fails midway, if the stream's API has its
        own (b"": the gateway's OpenAI error event)."""
        return b""


class Adapter:
    """Base class: one subclass per provider kind, registered in ``providers.registry``.

    An adapter holds only its (immutable) ``Account``: what one call needs to carry from the request
    to the answer travels in ``UpstreamRequest.context`` and comes back as ``context``.
    """

    kind: ClassVar[str]
    label: ClassVar[str]
    default_base_url: ClassVar[str] = ""
    requires_api_key: ClassVar[bool] = True
    # What ``chat_request`` does with each field of a chat completion body: mapped, dropped or refused.
    chat_parameters: ClassVar[ParameterPolicy]
    # Whether the upstream speaks Anthropic's Messages API itself: such an adapter implements
    # ``messages_request`` / ``count_tokens_request`` (the client's bytes forwarded, see
    # providers/messages/passthrough.py); every other adapter gets Messages through its chat methods.
    speaks_messages: ClassVar[bool] = False
    # The account options this kind reads (``Account.options``): what the admin offers as fields and the
    # configuration file checks. Keys no kind declares still reach the adapter as they are.
    option_specs: ClassVar[tuple[OptionSpec, ...]] = ()

    def __init__(self, account: Account) -> None:
        self.account = account

    @property
    def base_url(self) -> str:
        return (self.account.base_url or self.default_base_url).rstrip("/")

    def chat_request(self, body: dict[str, Any], upstream_model: str, max_output_tokens: int | None = None) -> UpstreamRequest:
        """The upstream request for an OpenAI chat completion body (its ``model`` already removed).

        ``max_output_tokens`` is the registry's default for providers that need a limit when the
        client sent none. A field the provider cannot honour and that changes the answer's
        meaning raises ``ProviderError(400, ..., param=field)``, as ``chat_parameters`` declares.
        """
        raise NotImplementedError

    def chat_result(self, body: bytes, public_model: str, context: Mapping[str, Any] | None = None) -> ChatResult:
        """The upstream's 2xx body as an OpenAI ``chat.completion`` (bytes) plus its usage.

        ``context`` is the ``UpstreamRequest.context`` of the request this body answers.
        """
        raise NotImplementedError

    def chat_stream(self, public_model: str, include_usage: bool, context: Mapping[str, Any] | None = None
                    ) -> StreamTranslator:
        """A translator from the upstream's stream to OpenAI ``chat.completion.chunk`` SSE events.

        It must end the client's stream with ``data: [DONE]`` (and set ``finished``) once the
        upstream says the answer is complete, and emit the usage chunk only if ``include_usage``.
        """
        raise NotImplementedError

    def error(self, status: int, body: bytes, retry_after: str | None = None) -> ProviderError:
        """Translate an upstream error response into the error the client sees.

        The client's request problems keep their status; the upstream's own failures become
        502/503/504, and a rejected provider key never reads as the client's 401.
        """
        message, type_, code, param = self.parse_error_body(body)
        message = self.redact(message or f"The upstream returned HTTP {status}.")[:1000]
        name = self.account.name
        if status in (401, 403):
            return ProviderError(
                502, f"The upstream provider rejected the gateway's credentials for account '{name}' "
                f"(HTTP {status}). An administrator must fix the provider key.",
                "upstream_error", "upstream_auth_failed",
            )
        if status == 429:
            return ProviderError(429, message, type_ or "rate_limit_error", code or "rate_limit_exceeded",
                                 retry_after=retry_after)
        if status == 408 or status == 504:
            return ProviderError(504, message, "upstream_error", code or "upstream_timeout")
        if status == 503:
            return ProviderError(503, message, "upstream_error", code or "upstream_unavailable", retry_after=retry_after)
        if 400 <= status < 500:
            return ProviderError(status, message, type_ or "invalid_request_error", code, param)
        return ProviderError(502, message, "upstream_error", code or "upstream_error")

    def parse_error_body(self, body: bytes) -> tuple[str, str | None, str | None, str | None]:
        """(message, type, code, param) from an upstream error body; OpenAI's shape by default."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return "", None, None, None
        err = data.get("error", data) if isinstance(data, dict) else None
        if isinstance(err, str):
            return err, None, None, None
        if not isinstance(err, dict):
            return "", None, None, None
        message = err.get("message") or err.get("detail") or ""
        if not isinstance(message, str):
            message = orjson.dumps(message).decode()
        code = err.get("code")
        param = err.get("param")
        return (
            message,
            err.get("type") if isinstance(err.get("type"), str) else None,
            str(code) if code is not None else None,
            param if isinstance(param, str) else None,
        )

    # -- legacy text completions: chat-only providers get them through chat (providers.completions.ChatOnlyAdapter)
    def completion_request(self, body: dict[str, Any], upstream_model: str, max_output_tokens: int | None = None
                           ) -> UpstreamRequest:
        """The upstream request for an OpenAI ``/completions`` body (its ``model`` already removed)."""
        raise invalid("model", f"{self.label} deployments do not serve text completions.", "unsupported_endpoint")

    def completion_result(self, body: bytes, public_model: str, request: dict[str, Any],
                          context: Mapping[str, Any] | None = None) -> ChatResult:
        """The upstream's 2xx body as an OpenAI ``text_completion`` plus its usage."""
        raise NotImplementedError

    def completion_stream(self, public_model: str, include_usage: bool, request: dict[str, Any],
                          context: Mapping[str, Any] | None = None) -> StreamTranslator:
        """A translator from the upstream's stream to OpenAI ``text_completion`` SSE events."""
        raise NotImplementedError

    # -- embeddings: only providers that have them override these
    def embeddings_request(self, body: dict[str, Any], upstream_model: str) -> UpstreamRequest:
        """The upstream request for an OpenAI ``/embeddings`` body (its ``model`` already removed)."""
        raise invalid("model", f"{self.label} deployments do not serve embeddings.", "unsupported_endpoint")

    def embeddings_result(self, body: bytes, public_model: str, request: dict[str, Any]) -> ChatResult:
        """The upstream's 2xx body as an OpenAI embedding list (``encoding_format`` as the client asked)."""
        raise NotImplementedError

    def models_request(self) -> UpstreamRequest | None:
        """A cheap request that proves the account works (``None`` if the provider has none)."""
        return None

    def redact(self, text: str) -> str:
        """Remove this account's secret, and anything shaped like a key, from text for a client or a log."""
        return redact(text, self.account.api_key)


def redact(text: str, secret: str) -> str:
    """Text without ``secret`` and without anything shaped like a key, for a client or a log."""
    if secret:
        text = text.replace(secret, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", text)
