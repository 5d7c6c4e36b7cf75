"""Google Gemini's native Generative Language API: ``generateContent`` and ``streamGenerateContent``.

Requests are rebuilt in Gemini's shape by ``providers/gemini/request.py`` (``contents`` with roles
``user``/``model``, a top-level ``systemInstruction``, ``generationConfig``, ``functionDeclarations``);
answers and SSE chunks are rebuilt as OpenAI chat completions by ``providers/gemini/response.py``.
Here are the URLs, the key header, Google's error envelope and embeddings.

Gemini 3 models sign their function calls (``thoughtSignature``) and refuse a replayed call
without its signature, so a signature travels inside the OpenAI tool call id (after ``.ts.``)
and goes back on the ``functionCall`` part when the client replays the call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import orjson

from providers import embeddings
from providers.base import ChatResult, ProviderError, StreamTranslator, UpstreamRequest
from providers.completions import ChatOnlyAdapter
from providers.errors import reads_upstream
from providers.gemini.request import LABEL, PARAMETERS, request_body
from providers.gemini.response import GeminiStream, blocked, completion, usage_of
from providers.urls import path_segments

# -- errors -----------------------------------------------------------------------------------------

def google_error(body: bytes) -> dict[str, Any] | None:
    """The ``error`` object of Google's RPC-style body, also when wrapped in a list."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else None


def _details(error: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    details = error.get("details")
    return [d for d in details if isinstance(d, dict) and str(d.get("@type", "")).endswith(kind)] \
        if isinstance(details, list) else []


def retry_delay(error: dict[str, Any]) -> str | None:
    """``google.rpc.RetryInfo.retryDelay`` ("47s", "1.5s") as whole seconds for ``Retry-After``."""
    for info in _details(error, "google.rpc.RetryInfo"):
        match = re.fullmatch(r"(\d+(?:\.\d+)?)s", str(info.get("retryDelay") or ""))
        if match:
            return str(math.ceil(float(match.group(1))))
    return None


# -- the adapter ------------------------------------------------------------------------------------

class GeminiAdapter(ChatOnlyAdapter):
    kind = "gemini"
    label = LABEL
    chat_parameters = PARAMETERS
    default_base_url = "https://generativelanguage.googleapis.com/v1beta"

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.account.api_key:  # a header, never ?key=: URLs end up in logs
            headers["x-goog-api-key"] = self.account.api_key
        return headers

    def chat_request(self, body: dict[str, Any], upstream_model: str, max_output_tokens: int | None = None) -> UpstreamRequest:
        payload = request_body(body, max_output_tokens)
        model = path_segments(upstream_model.removeprefix("models/"))
        method = "streamGenerateContent?alt=sse" if body.get("stream") else "generateContent"
        return UpstreamRequest("POST", f"{self.base_url}/models/{model}:{method}", self.headers(), orjson.dumps(payload))

    @reads_upstream
    def chat_result(self, body: bytes, public_model: str, context: Mapping[str, Any] | None = None) -> ChatResult:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict) or not (data.get("candidates") or blocked(data)):
            raise ProviderError(502, f"The upstream '{self.account.name}' returned a response without an answer.",
                                "upstream_error", "upstream_bad_response")
        usage = usage_of(data.get("usageMetadata"))
        return ChatResult(orjson.dumps(completion(data, public_model)), usage[0] if usage else None)

    def chat_stream(self, public_model: str, include_usage: bool, context: Mapping[str, Any] | None = None
                    ) -> StreamTranslator:
        return GeminiStream(public_model, include_usage, self.error)

    def embeddings_request(self, body: dict[str, Any], upstream_model: str) -> UpstreamRequest:
        model = upstream_model.removeprefix("models/")
        payload = embeddings.gemini_request(body, model, LABEL)
        url = f"{self.base_url}/models/{path_segments(model)}:batchEmbedContents"
        return UpstreamRequest("POST", url, self.headers(), orjson.dumps(payload))

    def embeddings_result(self, body: bytes, public_model: str, request: dict[str, Any]) -> ChatResult:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        return embeddings.embedding_list(embeddings.gemini_vectors(data), public_model, request, self.account.name)

    def models_request(self) -> UpstreamRequest:
        return UpstreamRequest("GET", f"{self.base_url}/models", self.headers())

    def error(self, status: int, body: bytes, retry_after: str | None = None) -> ProviderError:
        error = google_error(body)
        if error is not None:
            reasons = {str(d.get("reason") or "") for d in _details(error, "google.rpc.ErrorInfo")}
            if status == 400 and any(r.startswith("API_KEY_") for r in reasons):
                status = 401  # Google reports a bad key as the request's fault; it is the account's
            if status == 400 and error.get("status") == "FAILED_PRECONDITION":  # billing, region: an admin's job
                message = self.redact(str(error.get("message") or ""))[:500]
                return ProviderError(502, f"The provider account '{self.account.name}' cannot serve requests: {message}",
                                     "upstream_error", "upstream_account_unusable")
            retry_after = retry_after or retry_delay(error)
        return super().error(status, body, retry_after)

    def parse_error_body(self, body: bytes) -> tuple[str, str | None, str | None, str | None]:
        error = google_error(body)
        if error is None:
            return super().parse_error_body(body)
        message = error.get("message")
        message = message if isinstance(message, str) else ""
        status = error.get("status")
        code = error.get("code")
        if not isinstance(status, str) or (isinstance(code, int) and code >= 500):
            return message, None, None, None  # the gateway names upstream failures itself
        return message, None, "rate_limit_exceeded" if status == "RESOURCE_EXHAUSTED" else status.lower(), None
