"""Anthropic's Messages API (``POST /v1/messages``) behind OpenAI's chat completions interface.

The request is rebuilt by ``providers/anthropic/request.py``, answers and stream events by
``providers/anthropic/response.py``; here are the URL, headers and errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from providers.anthropic.request import LABEL, PARAMETERS, request_body
from providers.anthropic.response import ERRORS, AnthropicStream, completion
from providers.base import (
    EXTRA_HEADERS,
    ChatResult,
    OptionSpec,
    ProviderError,
    StreamTranslator,
    UpstreamRequest,
)
from providers.completions import ChatOnlyAdapter
from providers.errors import reads_upstream
from providers.messages.passthrough import FORWARDED_HEADERS, PassthroughStream, message_usage, with_model
from providers.parameters import invalid

API_VERSION = "2023-06-01"


class AnthropicAdapter(ChatOnlyAdapter):
    kind = "anthropic"
    label = LABEL
    chat_parameters = PARAMETERS
    default_base_url = "https://api.anthropic.com/v1"
    option_specs = (
        OptionSpec("anthropic_version", "API version", f"Sent as the anthropic-version header when the client sends "
                   f"none. Empty: {API_VERSION}."),
        OptionSpec("anthropic_beta", "Beta flags", "Sent as the anthropic-beta header (comma-separated flags, e.g. "
                   "prompt-caching-2024-07-31), added to a Messages client's own."),
        EXTRA_HEADERS,
    )

    def headers(self) -> dict[str, str]:
        options = self.account.options
        headers = {"x-api-key": self.account.api_key,
                   "anthropic-version": str(options.get("anthropic_version") or API_VERSION),
                   "content-type": "application/json"}
        if options.get("anthropic_beta"):
            headers["anthropic-beta"] = str(options["anthropic_beta"])
        extra = options.get("headers")
        if isinstance(extra, dict):
            headers.update({str(k): str(v) for k, v in extra.items()})
        return headers

    def chat_request(self, body: dict[str, Any], upstream_model: str, max_output_tokens: int | None = None) -> UpstreamRequest:
        payload = request_body(body, upstream_model, max_output_tokens)
        return UpstreamRequest("POST", f"{self.base_url}/messages", self.headers(), orjson.dumps(payload))

    @reads_upstream
    def chat_result(self, body: bytes, public_model: str, context: Mapping[str, Any] | None = None) -> ChatResult:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        document, usage = completion(data, public_model, self.account.name)
        return ChatResult(orjson.dumps(document), usage)

    def chat_stream(self, public_model: str, include_usage: bool, context: Mapping[str, Any] | None = None
                    ) -> StreamTranslator:
        return AnthropicStream(public_model, include_usage, self.error)

    # -- the Messages API, passed through: the client's bytes and version headers, the account's key
    speaks_messages = True

    def forwarded_headers(self, client_headers: Mapping[str, str]) -> dict[str, str]:
        """The account's headers, with the client's ``anthropic-version`` and ``anthropic-beta`` instead of
        the account's own (the account's beta flags are kept beside the client's)."""
        headers = self.headers()
        for name in FORWARDED_HEADERS:
            value = client_headers.get(name, "").strip()
            if not value:
                continue
            if len(value) > 1000 or not value.isascii() or not value.isprintable():
                raise invalid(name, f"The header '{name}' must be printable ASCII of at most 1000 characters.")
            if name == FORWARDED_HEADERS[1] and headers.get(name):
                own = [flag.strip() for flag in headers[name].split(",")]
                value = ",".join(dict.fromkeys([*[f.strip() for f in value.split(",")], *own]))
            headers[name] = value
        return headers

    def messages_request(self, raw: bytes, body: dict[str, Any], upstream_model: str,
                         client_headers: Mapping[str, str], path: str = "/messages") -> UpstreamRequest:
        """The client's Messages body as it was sent (only ``model`` replaced when the upstream's differs)."""
        return UpstreamRequest("POST", f"{self.base_url}{path}", self.forwarded_headers(client_headers),
                               with_model(raw, body, upstream_model))

    def count_tokens_request(self, raw: bytes, body: dict[str, Any], upstream_model: str,
                             client_headers: Mapping[str, str]) -> UpstreamRequest:
        return self.messages_request(raw, body, upstream_model, client_headers, "/messages/count_tokens")

    def messages_result(self, body: bytes) -> ChatResult:
        return ChatResult(body, message_usage(body))

    def messages_stream(self) -> StreamTranslator:
        statuses = {name: status for name, (status, _, _) in ERRORS.items()}
        return PassthroughStream(self.error, statuses)

    def error(self, status: int, body: bytes, retry_after: str | None = None) -> ProviderError:
        # 529 "overloaded" means try again later: a 503 for the client; a billing problem is the gateway's.
        return super().error({529: 503, 402: 502}.get(status, status), body, retry_after)

    def parse_error_body(self, body: bytes) -> tuple[str, str | None, str | None, str | None]:
        """Anthropic's ``{"type": "error", "error": {"type", "message"}}``."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return "", None, None, None
        error = data.get("error") if isinstance(data, dict) else None
        if not isinstance(error, dict):
            return "", None, None, None
        message = error.get("message")
        _, type_, code = ERRORS.get(error.get("type"), (0, None, None))
        return (message if isinstance(message, str) else "", type_, code, None)

    def models_request(self) -> UpstreamRequest:
        headers = self.headers()
        headers.pop("content-type")
        return UpstreamRequest("GET", f"{self.base_url}/models", headers)
