"""The inference endpoints on the hot path: chat completions, legacy completions, embeddings."""

from __future__ import annotations

from typing import Any

from gateway.edge.app import Request, Response
from gateway.inference import validation
from gateway.inference.pipeline import Operation, handle
from gateway.usage.estimate import estimate, estimate_prompt_only


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
)


async def chat_completions(request: Request, response: Response) -> None:
    await handle(CHAT, request, response)


async def completions(request: Request, response: Response) -> None:
    await handle(COMPLETIONS, request, response)


async def embeddings(request: Request, response: Response) -> None:
    await handle(EMBEDDINGS, request, response)
