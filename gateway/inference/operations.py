"""What differs between the inference endpoints: how a body is checked, sent and answered.

Each ``Operation`` tells the one inference flow (gateway/inference/pipeline.py) which adapter
methods build the upstream request and translate the answer, whole or streamed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.access.authentication import TokenInfo
from gateway.inference import messages, validation
from gateway.responses import estimate as responses_usage
from gateway.responses import store
from gateway.routing.registry import Entry
from gateway.usage.call import Call
from gateway.usage.estimate import estimate, estimate_messages, estimate_prompt_only
from providers.base import Adapter, ChatResult, StreamTranslator, UpstreamRequest, Usage
from providers.messages import dispatch as messages_api
from providers.responses import endpoint as responses

# (adapter, client body as parsed, its bytes, upstream model, entry, client headers) -> the upstream request.
ClientRequest = Callable[[Adapter, dict[str, Any], bytes, str, Entry, Mapping[str, str]], UpstreamRequest]


@dataclass(frozen=True)
class Operation:
    endpoint: str  # as logged, e.g. "chat.completions"
    validate: Callable[[dict[str, Any]], None]
    request: Callable[[Adapter, dict[str, Any], str, Entry], UpstreamRequest]
    # The last argument of result and stream is the context of the request that was answered.
    result: Callable[[Adapter, bytes, str, dict[str, Any], Mapping[str, Any]], ChatResult]
    stream: Callable[[Adapter, str, bool, dict[str, Any], Mapping[str, Any]], StreamTranslator] | None = None
    # Usage to log when the provider reports none: (client body, answer bytes, model) -> Usage.
    estimate: Callable[[dict[str, Any], bytes, str], Usage] | None = None
    # Whether the answer is generated text (a tpm limit or budget reserves output tokens for it).
    generates: bool = True
    # Runs once the body is valid and the token known, before routing and limits: may rewrite the body
    # (Responses: the stored conversation put before the input); what it returns goes to ``keep``.
    prepare: Callable[[dict[str, Any], TokenInfo], Awaitable[Any]] | None = None
    # Runs with the complete answer before its end reaches the client (Responses: stored):
    # (call, client body, what ``prepare`` returned, the answer's JSON or None).
    keep: Callable[[Call, dict[str, Any], Any, bytes | None], Awaitable[None]] | None = None
    # For endpoints that forward what the client sent (its bytes and headers): used instead of ``request``.
    client_request: ClientRequest | None = None
    # For endpoints the gateway may answer itself: whether it does for a deployment of this adapter
    # (``answers_locally``), and the answer (``local``: client body, upstream model -> answer).
    answers_locally: Callable[[Adapter], bool] | None = None
    local: Callable[[dict[str, Any], str], ChatResult] | None = None


def _chat_validate(body: dict[str, Any]) -> None:
    validation.chat_messages(body)


CHAT = Operation(
    "chat.completions",
    validate=_chat_validate,
    request=lambda adapter, body, model, entry: adapter.chat_request(body, model, entry.max_output_tokens),
    result=lambda adapter, raw, model, client, context: adapter.chat_result(raw, model, context),
    stream=lambda adapter, model, include_usage, client, context: adapter.chat_stream(model, include_usage, context),
    estimate=estimate,
)

COMPLETIONS = Operation(
    "completions",
    validate=validation.completion_prompt,
    request=lambda adapter, body, model, entry: adapter.completion_request(body, model, entry.max_output_tokens),
    result=lambda adapter, raw, model, client, context: adapter.completion_result(raw, model, client, context),
    stream=lambda adapter, model, include_usage, client, context: adapter.completion_stream(
        model, include_usage, client, context),
    estimate=estimate,
)

EMBEDDINGS = Operation(
    "embeddings",
    validate=validation.embeddings_input,
    request=lambda adapter, body, model, entry: adapter.embeddings_request(body, model),
    result=lambda adapter, raw, model, client, context: adapter.embeddings_result(raw, model, client),
    estimate=estimate_prompt_only,
    generates=False,
)

RESPONSES = Operation(
    "responses",
    validate=validation.responses_body,
    request=lambda adapter, body, model, entry: responses.upstream_request(adapter, body, model, entry.max_output_tokens),
    result=lambda adapter, raw, model, client, context: responses.result(adapter, raw, model, client, context),
    stream=lambda adapter, model, include_usage, client, context: responses.stream(adapter, model, client, context),
    estimate=responses_usage.estimate,
    prepare=store.expand,
    keep=store.save,
)


def _unused_request(adapter: Adapter, body: dict[str, Any], model: str, entry: Entry) -> UpstreamRequest:
    raise NotImplementedError("this operation builds its requests with client_request")


MESSAGES = Operation(
    "messages",
    validate=messages.validate_messages,
    request=_unused_request,
    client_request=lambda adapter, body, raw, model, entry, headers: messages_api.request(
        adapter, body, raw, model, headers, entry.max_output_tokens),
    result=lambda adapter, raw, model, client, context: messages_api.result(adapter, raw, model, context),
    stream=lambda adapter, model, include_usage, client, context: messages_api.stream(adapter, model, context),
    estimate=estimate_messages,
)


def _count_tokens_request(adapter: Adapter, body: dict[str, Any], raw: bytes, model: str, entry: Entry,
                          headers: Mapping[str, str]) -> UpstreamRequest:
    upstream = messages_api.count_tokens_request(adapter, body, raw, model, headers)
    assert upstream is not None  # (deployments answered locally are never sent)
    return upstream


COUNT_TOKENS = Operation(
    "messages.count_tokens",
    validate=messages.validate_count_tokens,
    request=_unused_request,
    client_request=_count_tokens_request,
    # The upstream's count as it is; counting is free: no tokens are used.
    result=lambda adapter, raw, model, client, context: ChatResult(raw, Usage()),
    generates=False,
    answers_locally=lambda adapter: not adapter.speaks_messages,
    local=messages.counted_locally,
)
