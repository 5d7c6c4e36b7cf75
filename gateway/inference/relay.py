"""Relaying an upstream stream to the client as OpenAI server-sent events."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway.edge.http import Response
from gateway.errors import error_event
from gateway.inference.transport import UpstreamResponse, UpstreamUnavailable
from gateway.usage.call import Call
from providers.base import ProviderError, StreamTranslator

T = TypeVar("T")

logger = logging.getLogger(__name__)


def read(translate: Callable[[bytes], T], data: bytes) -> T:
    """``translate(data)``; an adapter that fails on what the upstream sent (an exception other than
    ``ProviderError``) means the upstream's answer is malformed: 502, not the gateway's 500."""
    try:
        return translate(data)
    except ProviderError:
        raise
    except Exception as exc:
        logger.warning("an upstream answer the adapter could not read", exc_info=True)
        raise ProviderError(502, "The upstream sent an answer the gateway could not read.", "upstream_error",
                            "upstream_malformed") from exc


# How much of a stream is kept to estimate its usage if the provider reports none.
KEEP_FOR_ESTIMATE = 1 << 20


async def relay_stream(call: Call, response: Response, translator: StreamTranslator,
                       upstream_response: UpstreamResponse, keep: bool = False,
                       before_end: Callable[[], Awaitable[None]] | None = None) -> None:
    """Copy the upstream stream to the client as OpenAI SSE; a failure midway ends it with an error event.

    The log row is queued just before the stream's last bytes (``[DONE]`` or the error event) go
    out, so a client that has seen the end of its stream will find the row; only when the usage
    must be estimated (``keep``) is it queued afterwards, by ``handle``. ``before_end`` runs once the
    translator says the answer is complete, before its last event goes out (a stored response is
    written then: a client that has its answer can continue from it at once).
    """
    await response.start_stream()
    response.on_disconnect(upstream_response.close)  # a reasoning model may pause for minutes
    kept: list[bytes] = []
    size = 0

    def settle(log: bool = True) -> None:
        call.usage = translator.usage
        if translator.failed is not None and call.error is None:
            call.fail(translator.failed)
        if call.usage is None and kept:
            call.response_body = b"".join(kept)
        if log and (call.usage is not None or not keep):
            call.log()

    try:
        async for data in upstream_response.chunks():
            out = read(translator.feed, data)
            if out:
                if translator.first_token_seen:
                    call.first_token()
                if keep and size < KEEP_FOR_ESTIMATE:
                    kept.append(out)
                    size += len(out)
                if translator.finished:
                    if before_end is not None:
                        await before_end()
                        before_end = None
                    settle()
                await response.write(out)
        tail = read(lambda _: translator.close(), b"")
        if translator.finished and before_end is not None:
            await before_end()
            before_end = None
        if translator.finished and not call.logged:
            settle()
        if tail:
            await response.write(tail)
        if not translator.finished:
            raise ProviderError(502, "The upstream ended the stream before it was complete.", "upstream_error",
                                "stream_incomplete")
    except (ProviderError, UpstreamUnavailable) as exc:
        if response.disconnected:  # the upstream was closed because the client left
            call.fail(ProviderError(499, "The client closed the connection.", "client_closed"))
            return
        error = exc if isinstance(exc, ProviderError) else ProviderError(
            504 if exc.timeout else 502, str(exc), "upstream_error", "upstream_stream_failed")
        call.fail(error)
        settle()
        await response.write(translator.fail(error) or error_event(error, response.error_style))
    except OSError:  # the client went away: stop reading the upstream
        call.fail(ProviderError(499, "The client closed the connection.", "client_closed"))
        return
    finally:
        if not call.logged:
            settle(log=False)  # handle() logs it (after estimating the usage, or after the client left)
        upstream_response.close()
    await response.end()
