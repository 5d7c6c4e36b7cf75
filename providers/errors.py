"""The error every adapter raises: what the client is to see, as OpenAI's error object describes it.

Rendering it (the ``{"error": {...}}`` envelope, an SSE error event) is the gateway's job.
"""

from __future__ import annotations


class ProviderError(Exception):
    """An error to show the client in OpenAI's envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "upstream_error",
        code: str | None = None,
        param: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.retry_after = retry_after
