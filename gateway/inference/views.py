"""The inference endpoints as hot views: POST /v1/chat/completions, /v1/completions, /v1/embeddings,
/v1/responses, /v1/messages and /v1/messages/count_tokens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from gateway.access.policy import TokenLimits
from gateway.edge.http import Request, Response
from gateway.edge.views import HotView
from gateway.inference import operations, pipeline
from gateway.inference.operations import Operation


class InferenceView(HotView):
    """A hot view that runs one ``Operation`` through the inference pipeline."""

    operation: ClassVar[Operation]
    # Limit policies (rpm, tpm, parallel, budget per token and team): the pipeline runs their ``check``
    # once the model is routed and their ``settle`` when the request is over (see TokenLimits).
    limit_classes: ClassVar[Sequence[type[TokenLimits]]] = (TokenLimits,)

    def __init__(self) -> None:
        super().__init__()
        self.limiters = [cls() for cls in self.limit_classes]

    async def dispatch(self, request: Request, response: Response) -> None:
        # The pipeline runs ``initial()`` itself, inside the request's log record: a refused token is logged too.
        await pipeline.handle(self.operation, self, request, response)


class ChatCompletions(InferenceView):
    """OpenAI's chat completions, streamed or not."""

    operation = operations.CHAT


class Completions(InferenceView):
    """OpenAI's legacy text completions, streamed or not."""

    operation = operations.COMPLETIONS


class Embeddings(InferenceView):
    """OpenAI's embeddings."""

    operation = operations.EMBEDDINGS


class Responses(InferenceView):
    """OpenAI's Responses API, streamed or not, on every provider kind (stored with ``store``)."""

    operation = operations.RESPONSES
class Messages(InferenceView):
    """The Messages API (``POST /v1/messages``), streamed or not; errors in its own envelope."""

    operation = operations.MESSAGES
    error_style = "messages"


class CountTokens(InferenceView):
    """The token count of a Messages request (``POST /v1/messages/count_tokens``); errors in its envelope."""

    operation = operations.COUNT_TOKENS
    error_style = "messages"
