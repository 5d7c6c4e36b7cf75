"""Cloudflare Workers AI over REST, native run endpoint.

``POST {base}/accounts/{account_id}/ai/run/{model}`` with a Bearer API token. The request body is
built by ``providers/cloudflare/request.py``, answers and streams are read by
``providers/cloudflare/response.py``; here are the URLs, headers, errors and embeddings.

The native output has no finish reason: "length" is told from "stop" by the output limit the
upstream applied, which ``chat_request`` puts in the request's ``context`` (``OUTPUT_LIMIT``) for
``chat_result`` and ``chat_stream`` to read back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson

from providers import embeddings
from providers.base import ChatResult, OptionSpec, ProviderError, StreamTranslator, UpstreamRequest
from providers.cloudflare.request import LABEL, PARAMETERS, request_body
from providers.cloudflare.response import (
    WORKERS_AI_DEFAULT_MAX_TOKENS,
    CloudflareStream,
    completion,
    result_of,
)
from providers.completions import ChatOnlyAdapter
from providers.errors import reads_upstream
from providers.urls import path_segments

# Workers AI error codes worth an OpenAI error code of their own: unknown model, daily quota, capacity.
_ERROR_CODES = {5007: "model_not_found", 3042: "model_not_found", 3036: "insufficient_quota",
                3040: "rate_limit_exceeded"}
_ROUTING_FAILED = 7003  # "Could not route to ...": a wrong account id or base URL, not the client's fault
OUTPUT_LIMIT = "output_limit"  # context key: the max_tokens sent, else Workers AI's default


def _limit(context: Mapping[str, Any] | None) -> int:
    """The output limit the upstream applied to the request of ``context`` (its default if unknown)."""
    return (context or {}).get(OUTPUT_LIMIT) or WORKERS_AI_DEFAULT_MAX_TOKENS


class CloudflareAdapter(ChatOnlyAdapter):
    kind = "cloudflare"
    label = LABEL
    default_base_url = "https://api.cloudflare.com/client/v4"
    chat_parameters = PARAMETERS
    ACCOUNT_ID = OptionSpec("account_id", "Account ID", "The Cloudflare account whose Workers AI answers: the id "
                            "after dash.cloudflare.com/ in the dashboard's URL. Every request fails without it.",
                            required=True)
    option_specs = (ACCOUNT_ID,)

    @property
    def name(self) -> str:
        return self.account.name

    def account_url(self) -> str:
        account_id = self.account.options.get("account_id")
        if not isinstance(account_id, str) or not account_id.strip():
            raise ProviderError(500, f"The Cloudflare provider account '{self.name}' has no account id: an "
                                f"administrator must set its {self.ACCOUNT_ID.label} in the admin (Provider accounts "
                                f"→ {self.name} → Options), or options.{self.ACCOUNT_ID.name} in the configuration "
                                "file.", "server_error", "provider_misconfigured")
        return f"{self.base_url}/accounts/{quote(account_id.strip(), safe='')}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.account.api_key}", "Content-Type": "application/json"}

    def chat_request(self, body: dict[str, Any], upstream_model: str, max_output_tokens: int | None = None
                     ) -> UpstreamRequest:
        payload, max_tokens = request_body(body, max_output_tokens)
        return UpstreamRequest("POST", self.run_url(upstream_model), self.headers(), orjson.dumps(payload),
                               {OUTPUT_LIMIT: max_tokens or WORKERS_AI_DEFAULT_MAX_TOKENS})

    def run_url(self, upstream_model: str) -> str:
        # Catalog names such as @cf/meta/llama-3.1-8b-instruct are several path segments.
        return f"{self.account_url()}/ai/run/{path_segments(upstream_model, slashes=True)}"

    @reads_upstream
    def chat_result(self, body: bytes, public_model: str, context: Mapping[str, Any] | None = None) -> ChatResult:
        document, usage = completion(body, public_model, self.account, _limit(context))
        return ChatResult(orjson.dumps(document), usage)

    def chat_stream(self, public_model: str, include_usage: bool, context: Mapping[str, Any] | None = None
                    ) -> StreamTranslator:
        return CloudflareStream(self.account, public_model, include_usage, _limit(context))

    def error(self, status: int, body: bytes, retry_after: str | None = None) -> ProviderError:
        codes = _error_codes(body)
        if _ROUTING_FAILED in codes:
            message = self.redact(self.parse_error_body(body)[0])[:500]
            return ProviderError(502, f"Cloudflare could not route the request for provider account '{self.name}': "
                                 f"check its account_id option and base URL ({message}).", "upstream_error",
                                 "upstream_misconfigured")
        if 3040 in codes or 3036 in codes:  # capacity / daily quota: a rate limit, whatever the HTTP status
            status = 429
        elif 5007 in codes or 3042 in codes:  # no such model: a 404, as OpenAI answers for an unknown model
            status = 404
        return super().error(status, body, retry_after)

    def parse_error_body(self, body: bytes) -> tuple[str, str | None, str | None, str | None]:
        """Cloudflare's ``{"success": false, "errors": [{"code", "message"}]}``; OpenAI's shape otherwise."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return "", None, None, None
        errors = data.get("errors") if isinstance(data, dict) else None
        if not isinstance(errors, list) or not errors:
            return super().parse_error_body(body)
        messages, code = [], None
        for error in errors:
            if not isinstance(error, dict):
                continue
            text = str(error.get("message") or "Unknown error")
            if error.get("code") is not None:
                text += f" (Workers AI error {error['code']})"
                code = code or _ERROR_CODES.get(error["code"])
            messages.append(text)
        return "; ".join(messages), None, code, None

    def embeddings_request(self, body: dict[str, Any], upstream_model: str) -> UpstreamRequest:
        payload = embeddings.workers_ai_request(body, self.label)
        return UpstreamRequest("POST", self.run_url(upstream_model), self.headers(), orjson.dumps(payload))

    def embeddings_result(self, body: bytes, public_model: str, request: dict[str, Any]) -> ChatResult:
        vectors = embeddings.workers_ai_vectors(result_of(body, self.account))
        return embeddings.embedding_list(vectors, public_model, request, self.name)

    def models_request(self) -> UpstreamRequest:
        return UpstreamRequest("GET", f"{self.account_url()}/ai/models/search?per_page=1", self.headers())


def _error_codes(body: bytes) -> set[Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return set()
    errors = data.get("errors") if isinstance(data, dict) else None
    return {e.get("code") for e in errors if isinstance(e, dict)} if isinstance(errors, list) else set()
