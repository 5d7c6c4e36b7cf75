"""The inference endpoints as hot views: POST /v1/chat/completions, /v1/completions, /v1/embeddings."""

from __future__ import annotations

from typing import ClassVar

from gateway.edge.http import Request, Response
from gateway.edge.views import HotView
from gateway.inference import operations, pipeline
from gateway.inference.operations import Operation


class InferenceView(HotView):
    """A hot view that runs one ``Operation`` through the inference pipeline."""

    operation: ClassVar[Operation]

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
