"""Messages requests forwarded as they are, to an upstream that speaks the Messages API itself.

The client's bytes go upstream unchanged: only the top-level ``model`` value is replaced, in place,
when the deployment's upstream model has another name (``with_model``), so ``cache_control``,
thinking blocks and every field the gateway does not know arrive exactly as the client sent them.
Answers come back unchanged too; their usage is read on the way (``PassthroughStream``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from providers.base import ProviderError, SSEBuffer, StreamTranslator, Usage
from providers.parameters import invalid

# The client's headers a passthrough forwards: the API version and the beta features it asked for.
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")
_WHITESPACE = b" \t\r\n"


def _skip_space(raw: bytes, at: int) -> int:
    while at < len(raw) and raw[at] in _WHITESPACE:
        at += 1
    return at


def _string_end(raw: bytes, at: int) -> int:
    """The index just past the JSON string starting at ``raw[at]`` (a quote)."""
    at += 1
    while at < len(raw):
        byte = raw[at]
        if byte == 0x5C:  # a backslash escapes the next byte
            at += 2
            continue
        if byte == 0x22:
            return at + 1
        at += 1
    raise ValueError("unterminated string")


def _value_end(raw: bytes, at: int) -> int:
    """The index just past the JSON value starting at ``raw[at]`` (nested values skipped whole)."""
    if raw[at] == 0x22:
        return _string_end(raw, at)
    depth = 0
    while at < len(raw):
        byte = raw[at]
        if byte == 0x22:
            at = _string_end(raw, at)
            continue
        if byte in b"[{":
            depth += 1
        elif byte in b"]}":
            if depth == 0:
                return at
            depth -= 1
            if depth == 0:
                return at + 1
        elif byte == 0x2C and depth == 0:
            return at
        at += 1
    raise ValueError("unterminated value")


def model_span(raw: bytes) -> tuple[int, int] | None:
    """Where the top-level ``"model"`` value is in a JSON object's bytes (start, end), or None.

    The bytes are known to be one valid JSON object (the gateway parsed them). A key spelled with
    escapes (``"mod\\u0065l"``) is decoded before it is compared, as a JSON parser would.
    """
    spans = []
    at = _skip_space(raw, 0) + 1  # past "{"
    while True:
        at = _skip_space(raw, at)
        if at >= len(raw) or raw[at] == 0x7D:
            break
        key_end = _string_end(raw, at)
        key = orjson.loads(raw[at:key_end])
        at = _skip_space(raw, key_end) + 1  # past ":"
        at = _skip_space(raw, at)
        end = _value_end(raw, at)
        if key == "model":
            spans.append((at, end))
        at = _skip_space(raw, end)
        if at < len(raw) and raw[at] == 0x2C:
            at += 1
    if len(spans) > 1:
        raise invalid("model", "The request body names 'model' more than once.")
    return spans[0] if spans else None


def with_model(raw: bytes, body: dict[str, Any], upstream_model: str) -> bytes:
    """The client's bytes for ``upstream_model``: unchanged if the body already names it, else with only
    the top-level ``model`` value replaced (a body without ``model`` gets it as its first field)."""
    if body.get("model") == upstream_model:
        return raw
    value = orjson.dumps(upstream_model)
    span = model_span(raw)
    if span is None:
        start = _skip_space(raw, 0) + 1
        rest = raw[start:].lstrip(_WHITESPACE)
        separator = b"" if rest.startswith(b"}") else b","
        return raw[:start] + b'"model":' + value + separator + raw[start:]
    return raw[:span[0]] + value + raw[span[1]:]


def _counts(usage: Any, into: dict[str, int]) -> None:
    if isinstance(usage, dict):
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens"):
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                into[key] = value


def gateway_usage(counts: dict[str, int]) -> Usage:
    """Prompt tokens are every input token: uncached, written to the cache and read from it (``cached_tokens``)."""
    prompt = sum(counts.get(k, 0) for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
    completion = counts.get("output_tokens", 0)
    return Usage(prompt, completion, prompt + completion, counts.get("cache_read_input_tokens", 0))


def message_usage(body: bytes) -> Usage | None:
    """The usage of a Messages answer, if it reports one."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("usage"), dict):
        return None
    counts: dict[str, int] = {}
    _counts(data["usage"], counts)
    return gateway_usage(counts)


class PassthroughStream(StreamTranslator):
    """Hands the upstream's Messages events on unchanged, noting usage (``message_start`` and the
    cumulative ``message_delta``), the first token and the end (``message_stop``).

    An ``error`` event becomes ``to_error(status, body)``: the events before it are handed on, then
    it is raised, and the gateway sends the client its own error event.
    """

    def __init__(self, to_error: Callable[[int, bytes], ProviderError], statuses: dict[str, int]) -> None:
        self._to_error = to_error
        self._statuses = statuses
        self._sse = SSEBuffer()
        self._counts: dict[str, int] = {}
        self._error: ProviderError | None = None

    def feed(self, data: bytes) -> bytes:
        self._raise_pending()
        for event in self._sse.events(data):
            self._note(event)
        if self._error is not None:
            cut = data.find(b"event: error")
            if cut < 0:
                cut = data.find(b"event:error")
            return data[:cut] if cut > 0 else self._raise_pending() or b""
        return data

    def close(self) -> bytes:
        rest = self._sse.rest()
        if rest:
            self._note(rest)
        self._raise_pending()
        return b""

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _note(self, event: bytes) -> None:
        data = [line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:")]
        try:
            payload = orjson.loads(b"\n".join(data)) if data else None
        except orjson.JSONDecodeError:
            return
        if not isinstance(payload, dict):
            return
        kind = payload.get("type")
        if kind == "message_start" and isinstance(payload.get("message"), dict):
            _counts(payload["message"].get("usage"), self._counts)
            self.usage = gateway_usage(self._counts)
        elif kind == "message_delta":
            _counts(payload.get("usage"), self._counts)
            self.usage = gateway_usage(self._counts)
        elif kind in ("content_block_start", "content_block_delta"):
            self.first_token_seen = True
        elif kind == "message_stop":
            self.finished = True
        elif kind == "error" and self._error is None:
            error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
            self._error = self._to_error(self._statuses.get(error.get("type"), 502), orjson.dumps(payload))
