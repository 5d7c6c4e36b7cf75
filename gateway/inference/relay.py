"""Relaying an upstream stream to the client as OpenAI server-sent events.

A stream is ``open_stream``-ed inside its attempt (gateway/inference/dispatch.py): until the
translator has its first bytes for the client, a failure (a hang, a broken connection, a body
that is not an event stream, a malformed first event) is the deployment's and the next one is
tried. Once bytes have gone out, ``relay_stream`` ends a failure with an OpenAI error event.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
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


def incomplete() -> ProviderError:
    return ProviderError(502, "The upstream ended the stream before it was complete.", "upstream_error",
                         "stream_incomplete")


# How much of a stream is kept to estimate its usage if the provider reports none.
KEEP_FOR_ESTIMATE = 1 << 20
# How much of a 2xx web page answering a stream request is read (for the log's message).
NOT_A_STREAM_LIMIT = 1 << 16


@dataclass
class OpenedStream:
    """An upstream stream whose first translated bytes (``first``) are ready for the client."""

    translator: StreamTranslator
    response: UpstreamResponse
    chunks: AsyncIterator[bytes]
    first: bytes
    ended: bool = False  # the upstream body has ended already (``first`` includes the translator's tail)


async def open_stream(translator: StreamTranslator, response: UpstreamResponse) -> OpenedStream:
    """Read the upstream stream until the translator has bytes for the client (within the account's
    first-byte timeout: an upstream that sends only headers, or only comments, is a failed attempt)."""
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    # A web page (a proxy's or a login portal's) is never a stream. Other types are left to the
    # translator, which refuses what is not its stream (some providers answer JSON to a stream request).
    if media_type == "text/html":
        body = await response.read(limit=NOT_A_STREAM_LIMIT)
        logger.warning("a stream request answered with %s: %r", media_type, body[:200])
        raise ProviderError(502, f"The upstream answered a stream request with {media_type[:100]}, "
                            "not an event stream.", "upstream_error", "upstream_malformed")
    chunks = response.chunks()
    async for data in chunks:
        out = read(translator.feed, data)
        if out:
            return OpenedStream(translator, response, chunks, out)
    out = read(lambda _: translator.close(), b"")
    if not translator.finished:
        raise incomplete()
    return OpenedStream(translator, response, chunks, out, ended=True)


async def relay_stream(call: Call, response: Response, opened: OpenedStream, keep: bool = False,
                       estimate: Callable[[], Awaitable[None]] | None = None,
                       before_end: Callable[[], Awaitable[None]] | None = None) -> None:
    """Copy the upstream stream to the client as OpenAI SSE; a failure midway ends it with an error event
    (the official SDKs raise it as an APIError), never with a stream that looks complete.

    The log row is queued just before the stream's last bytes (``[DONE]`` or the error event) go
    out, so a client that has seen the end of its stream will find the row; when the usage must be
    estimated (``keep``: the provider reported none) it is queued afterwards, by ``handle``; a failed
    stream's row is queued before its error event, after ``estimate`` (which counts the text relayed
    when the provider's usage did not come, or stopped short). A client that leaves cancels this
    where it waits (``Response.cancelled_on_disconnect``): the ``finally`` closes the upstream and
    keeps what was relayed for the estimate. ``before_end`` runs once the translator says the answer
    is complete, before its last event goes out (a stored response is written then: a client that
    has its answer can continue from it at once).
    """
    translator = opened.translator
    kept: list[bytes] = []
    size = 0

    def settle(log: bool = True) -> None:
        call.usage = translator.usage
        if translator.failed is not None and call.error is None:
            call.fail(translator.failed)
        if kept and (call.usage is None or not translator.finished):  # (a provider's counts may stop short)
            call.response_body = b"".join(kept)
        if log and (call.usage is not None or not keep):
            call.log()

    async def finishing() -> None:
        nonlocal before_end
        if before_end is not None:
            done, before_end = before_end, None
            await done()

    async def send(out: bytes) -> None:
        nonlocal size
        if translator.first_token_seen:
            call.first_token()
        if keep and size < KEEP_FOR_ESTIMATE:
            kept.append(out)
            size += len(out)
        if translator.finished:
            await finishing()
            settle()
        await response.write(out)

    await response.start_stream()
    try:
        await send(opened.first)
        if not opened.ended:
            async for data in opened.chunks:
                out = read(translator.feed, data)
                if out:
                    await send(out)
            tail = read(lambda _: translator.close(), b"")
            if translator.finished:
                await finishing()
            if translator.finished and not call.logged:
                settle()
            if tail:
                await response.write(tail)
        if not translator.finished:
            raise incomplete()
    except (ProviderError, UpstreamUnavailable) as exc:
        error = exc if isinstance(exc, ProviderError) else ProviderError(
            504 if exc.timeout else 502, str(exc), "upstream_error",
            "upstream_timeout" if exc.timeout else "upstream_stream_failed")
        call.fail(error)
        settle(log=False)
        if estimate is not None:
            await estimate()
        call.log()
        try:
            await response.write(translator.fail(error) or error_event(error, response.error_style))
        except OSError:  # the client has gone too
            return
    except OSError:  # the client went away (noticed by a write): stop reading the upstream
        call.fail(ProviderError(499, "The client closed the connection.", "client_closed"))
        return
    finally:
        if not call.logged:
            settle(log=False)  # handle() logs it (after estimating the usage, or after the client left)
        opened.response.close()
    await response.end()
