"""The error every adapter raises: what the client is to see, as OpenAI's error object describes it.

Rendering it (the ``{"error": {...}}`` envelope, an SSE error event) is the gateway's job.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar


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


# What reading a well-formed answer can never raise, but a field of the wrong type can (a list where
# a number belongs, a string where an object does, a count orjson cannot encode).
MALFORMED = (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError)
F = TypeVar("F", bound=Callable[..., Any])


def reads_upstream(function: F) -> F:
    """Marks a method that reads what an upstream sent: a malformed answer becomes the 502 the client
    should see (``upstream_malformed``), never another exception."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except ProviderError:
            raise
        except MALFORMED as exc:
            raise ProviderError(502, f"The upstream sent an answer the gateway could not read ({type(exc).__name__}).",
                                "upstream_error", "upstream_malformed") from exc

    return wrapper  # type: ignore[return-value]
