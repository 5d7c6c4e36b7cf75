"""The only module that talks to upstream providers.

Everything sent upstream goes through a ``Transport``: ``send(request, timeouts)`` gives an
``UpstreamResponse`` (status, headers, the body whole or as it arrives) or raises
``UpstreamUnavailable``. ``AiohttpTransport`` is the real one; ``MockTransport`` answers from a
function, with no network, and ``use`` installs it (for tests).

``current()`` is this event loop's shared ``AiohttpTransport``: one pooled aiohttp session per
worker event loop, with keep-alive connections sized for thousands of concurrent streams.
aiohttp rather than httpx: in a bare ASGI app (2 workers, 64 concurrent clients) a call through
aiohttp's client served ~7,900 requests/s, httpx over an aiohttp transport ~3,350 and httpx's
own pool ~700.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.conf import gateway_settings
from providers.base import Account, ProviderError, UpstreamRequest


class UpstreamUnavailable(Exception):
    """The upstream could not be reached or did not answer in time."""

    def __init__(self, message: str, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds to wait: to open the connection; from sending (connecting included) to the answer's
    first bytes (its headers and the first bytes of its body); and for each next piece of the body.
    There is no limit on the whole exchange here: a stream lasts as long as the upstream keeps
    sending (a non-streamed answer has the pipeline's deadline)."""

    connect: float
    first_byte: float
    idle: float

    @classmethod
    def of(cls, account: Account) -> Timeouts:
        return cls(account.connect_timeout, account.first_byte_timeout, account.read_timeout)


class UpstreamResponse(ABC):
    """An upstream's answer whose body is not read yet.

    ``headers`` looks names up case-insensitively. Read the body whole (``read``, which also
    releases the response) or as it arrives (``chunks``); ``close`` releases it early and may be
    called more than once.
    """

    status: int
    headers: Mapping[str, str]

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body; more than ``limit`` bytes (default ``MAX_UPSTREAM_RESPONSE_BYTES``) is a 502.

        The bound keeps a worker's memory in check: an upstream's answer is held whole only here.
        """
        limit = gateway_settings.MAX_UPSTREAM_RESPONSE_BYTES if limit is None else limit
        parts: list[bytes] = []
        size = 0
        try:
            declared = self.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise too_large(limit)
            async for data in self.body():
                size += len(data)
                if size > limit:
                    raise too_large(limit)
                parts.append(data)
        finally:
            self.close()
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; past ``MAX_UPSTREAM_STREAM_BYTES`` in all, a 502 ``ProviderError``."""
        limit = gateway_settings.MAX_UPSTREAM_STREAM_BYTES
        size = 0
        async for data in self.body():
            size += len(data)
            if size > limit:
                raise too_large(limit, stream=True)
            yield data

    @abstractmethod
    def body(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive, unbounded (``read`` and ``chunks`` add the bounds)."""

    @abstractmethod
    def close(self) -> None: ...


def too_large(limit: int, stream: bool = False) -> ProviderError:
    setting = "GATEWAY_MAX_UPSTREAM_STREAM_BYTES" if stream else "GATEWAY_MAX_UPSTREAM_RESPONSE_BYTES"
    what = "stream" if stream else "answer"
    return ProviderError(502, f"The upstream's {what} is larger than the gateway accepts ({limit} bytes, {setting}).",
                         "upstream_error", "upstream_response_too_large")


class Transport(ABC):
    """Sends one request upstream. ``async with`` closes it at the end of the block."""

    @abstractmethod
    async def send(self, request: UpstreamRequest, timeouts: Timeouts) -> UpstreamResponse:
        """The upstream's response (any status), or ``UpstreamUnavailable`` if there is none."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release what the transport holds (its connections)."""

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.aclose()


class AiohttpResponse(UpstreamResponse):
    """The body's first bytes are awaited until ``first_byte_by`` (event-loop time), the next ones
    ``idle`` seconds each: a hung upstream raises ``UpstreamUnavailable(timeout=True)``, a connection
    that breaks (reset, closed before the declared length or the last chunk) ``UpstreamUnavailable``."""

    def __init__(self, response: aiohttp.ClientResponse, first_byte_by: float, timeouts: Timeouts) -> None:
        self._response = response
        self._first_byte_by = first_byte_by
        self._timeouts = timeouts
        self.status = response.status
        self.headers = response.headers

    async def body(self) -> AsyncIterator[bytes]:
        content = self._response.content
        started = False
        while True:
            try:
                # What has arrived already needs no timer (a small answer comes with its headers, and
                # its end right after): a timer costs ~4 us to set and cancel.
                data = content.read_nowait()
                if not data and content.at_eof():
                    return
                if not data and started:
                    async with asyncio.timeout(self._timeouts.idle):
                        data = await content.readany()
                elif not data:
                    async with asyncio.timeout_at(self._first_byte_by):
                        data = await content.readany()
            except TimeoutError as exc:
                raise UpstreamUnavailable(
                    f"The upstream stopped sending for {self._timeouts.idle:g} s (read_timeout)." if started else
                    f"The upstream sent no answer within {self._timeouts.first_byte:g} s (first_byte_timeout).",
                    timeout=True) from exc
            except aiohttp.ClientError as exc:
                raise UpstreamUnavailable(f"The upstream connection broke: {type(exc).__name__}.") from exc
            if not data:
                return
            started = True
            yield data

    def close(self) -> None:
        self._response.release()


class AiohttpTransport(Transport):
    """A pooled aiohttp session. Create it on the event loop that will use it; it sends no
    User-Agent of its own, and caches DNS answers for five minutes."""

    def __init__(self) -> None:
        config = gateway_settings
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=config.UPSTREAM_MAX_CONNECTIONS,
                limit_per_host=config.UPSTREAM_MAX_PER_HOST,
                keepalive_timeout=config.UPSTREAM_KEEPALIVE_SECONDS,
                ttl_dns_cache=300,
            ),
            timeout=aiohttp.ClientTimeout(total=None),
            skip_auto_headers=("User-Agent",),
        )

    async def send(self, request: UpstreamRequest, timeouts: Timeouts) -> UpstreamResponse:
        # aiohttp bounds the connecting; the first bytes have a deadline counted from now (connecting
        # included), which the headers and the body's first read share.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect)
        first_byte_by = asyncio.get_running_loop().time() + timeouts.first_byte
        try:
            async with asyncio.timeout_at(first_byte_by):
                try:
                    response = await self._session.request(
                        request.method, request.url, headers=request.headers, data=request.body, timeout=timeout
                    )
                except aiohttp.ClientConnectionResetError:
                    # A pooled keep-alive connection the upstream had just closed: nothing was sent on it
                    # ("cannot write to closing transport"), so the request goes once more, on a new one.
                    response = await self._session.request(
                        request.method, request.url, headers=request.headers, data=request.body, timeout=timeout
                    )
        except aiohttp.ConnectionTimeoutError as exc:
            raise UpstreamUnavailable(f"Could not connect to the upstream within {timeouts.connect:g} s "
                                      "(connect_timeout).", timeout=True) from exc
        except TimeoutError as exc:
            raise UpstreamUnavailable(f"The upstream sent no answer within {timeouts.first_byte:g} s "
                                      "(first_byte_timeout).", timeout=True) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"Could not reach the upstream: {type(exc).__name__}.") from exc
        return AiohttpResponse(response, first_byte_by, timeouts)

    async def aclose(self) -> None:
        await self._session.close()


class MockResponse(UpstreamResponse):
    """A canned answer. ``body`` is bytes, or chunks (an iterable or async iterable of bytes) to
    hand out one at a time; an exception the chunks raise (e.g. ``UpstreamUnavailable``) reaches
    the reader as it would from a real stream. After ``close`` no more chunks are handed out."""

    def __init__(self, status: int = 200, headers: Mapping[str, str] | None = None,
                 body: bytes | Iterable[bytes] | AsyncIterable[bytes] = b"") -> None:
        self.status = status
        self.headers = CIMultiDictProxy(CIMultiDict(headers or {}))
        self._body = body
        self.closed = False

    async def body(self) -> AsyncIterator[bytes]:
        body = self._body
        if isinstance(body, bytes | bytearray):
            if body and not self.closed:
                yield bytes(body)
        elif isinstance(body, AsyncIterable):
            async for data in body:
                if self.closed:
                    return
                yield data
        else:
            for data in body:
                if self.closed:
                    return
                yield data

    def close(self) -> None:
        self.closed = True


Handler = Callable[[UpstreamRequest], UpstreamResponse | Awaitable[UpstreamResponse]]


class MockTransport(Transport):
    """Answers each request with ``handler(request)``, a plain or async function that returns an
    ``UpstreamResponse`` (usually a ``MockResponse``) or raises ``UpstreamUnavailable``. Every
    request it is given is kept in ``requests``, in order."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[UpstreamRequest] = []

    async def send(self, request: UpstreamRequest, timeouts: Timeouts) -> UpstreamResponse:
        self.requests.append(request)
        answer = self.handler(request)
        if inspect.isawaitable(answer):
            answer = await answer
        return answer

    async def aclose(self) -> None:
        """Nothing to release."""


# One shared transport per event loop: a worker has one loop; tests may run several.
_shared: dict[asyncio.AbstractEventLoop, Transport] = {}
# Set by ``use``; when set, every loop sends through it.
_installed: Transport | None = None


def current() -> Transport:
    """The transport to send with: the one installed by ``use``, else this event loop's shared
    ``AiohttpTransport`` (made on first call)."""
    if _installed is not None:
        return _installed
    loop = asyncio.get_running_loop()
    found = _shared.get(loop)
    if found is None:
        found = _shared[loop] = AiohttpTransport()
    return found


@contextlib.contextmanager
def use(transport: Transport) -> Iterator[Transport]:
    """Send everything through ``transport`` while the block runs, from every event loop and
    thread (a test's live server runs its own); then put back what was there. It is not closed."""
    global _installed
    previous, _installed = _installed, transport
    try:
        yield transport
    finally:
        _installed = previous


@contextlib.asynccontextmanager
async def one_off() -> AsyncIterator[Transport]:
    """A transport for a call off the request path, whose event loop may exist for that call alone
    (``async_to_sync`` makes one when no loop runs): the one installed by ``use`` if any, else a
    new ``AiohttpTransport`` closed when the block ends, so that no pool is left behind."""
    if _installed is not None:
        yield _installed
        return
    async with AiohttpTransport() as transport:
        yield transport


async def close_client() -> None:
    """Close this event loop's shared transport (a worker does at shutdown). One installed by
    ``use`` belongs to whoever installed it and stays open."""
    found = _shared.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.aclose()
