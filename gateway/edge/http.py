"""The hot path's request and response: plain objects over one ASGI connection."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson

from gateway import jsonbody, redaction
from gateway.errors import body_too_large, client_closed, render

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}\Z")


# A request id must be unique, not secret: a random per-process prefix and a counter. (secrets.token_hex
# per request was ~10% of a worker's CPU at c=64 in py-spy: each call is a getrandom() system call.)
_ID_PREFIX = secrets.token_hex(6)
_ID_NUMBERS = itertools.count()


def _new_prefix() -> None:  # a forked worker must not share its parent's ids
    global _ID_PREFIX
    _ID_PREFIX = secrets.token_hex(6)


os.register_at_fork(after_in_child=_new_prefix)


def new_request_id() -> str:
    return f"req_{_ID_PREFIX}{next(_ID_NUMBERS):012x}"


class Request:
    """What a hot view gets: method, path, lower-cased headers, query, body, request id.

    ``user`` and ``auth`` are set by the view's authentication classes (as DRF's ``request.user``).
    """

    __slots__ = ("auth", "body", "headers", "method", "path", "query", "request_id", "scope", "user")

    def __init__(self, scope: Scope, body: bytes) -> None:
        self.scope = scope
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.headers: dict[str, str] = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        qs = scope.get("query_string") or b""
        self.query: dict[str, str] = dict(parse_qsl(qs.decode("latin-1"))) if qs else {}
        self.body = body
        incoming = self.headers.get("x-request-id", "")
        self.request_id = incoming if _REQUEST_ID.match(incoming) else new_request_id()
        self.user: Any = None
        self.auth: Any = None

    def json(self) -> Any:
        return jsonbody.parse(self.body)

    def cookie(self, name: str) -> str | None:
        for part in self.headers.get("cookie", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
        return None


# The scope extension a server (gateway/edge/protocol.py) tells a request its client left through: a set
# of callbacks it calls when the connection is lost.
DISCONNECT = "gateway.disconnect"


class Response:
    """Sends one response over ASGI; a stream is started once and then written to.

    Every byte and header value it sends passes the redactor: no piece of a provider key leaves.
    """

    def __init__(self, send: Send, request_id: str, receive: Receive | None = None,
                 disconnects: set[Callable[[], None]] | None = None) -> None:
        self._send = send
        self._receive = receive
        self._disconnects = disconnects  # the server's callbacks on a lost connection (gateway/edge/protocol.py)
        self._watching = False
        self.request_id = request_id
        self.started = False
        self.extra_headers: dict[str, str] = {}  # CORS and HSTS, on whatever is sent
        self.headers: dict[str, str] = {}  # sent with whatever response this request gets (e.g. rate limits)
        self.disconnected = False
        self.error_style = "default"  # the envelope of errors (gateway.errors.STYLES): the view's own
        self.streaming = False  # a stream has started
        self.finished = False  # the response's last bytes have been sent
        self._watcher: asyncio.Task | None = None
        self._on_disconnect: list[Callable[[], None]] = []

    def _headers(self, content_type: bytes, extra: dict[str, str] | None) -> list[tuple[bytes, bytes]]:
        if not self.request_id:  # the request failed before it was read
            self.request_id = new_request_id()
        headers = [(b"content-type", content_type), (b"x-request-id", self.request_id.encode())]
        if self.extra_headers:
            headers += [(k.lower().encode(), v.encode()) for k, v in self.extra_headers.items()]
        if self.headers:
            extra = {**self.headers, **extra} if extra else self.headers
        if extra:
            headers += [(k.lower().encode(), redaction.data(v.encode())) for k, v in extra.items()]
        return headers

    async def json(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.started = True
        start_headers = self._headers(b"application/json", headers)
        body = redaction.data(body)
        start_headers.append((b"content-length", str(len(body)).encode()))
        await self._send({"type": "http.response.start", "status": status, "headers": start_headers})
        await self._send({"type": "http.response.body", "body": body})
        self.finished = True

    async def error(self, exc: BaseException) -> None:
        status, headers, payload = render(exc, self.error_style)
        await self.json(status, orjson.dumps(payload), headers)

    async def start_stream(self) -> None:
        self.started = self.streaming = True
        self.watch_disconnect()  # a stream is long: notice when its client leaves
        await self._send({"type": "http.response.start", "status": 200, "headers": self._headers(
            b"text/event-stream; charset=utf-8", {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})})

    def on_disconnect(self, callback: Callable[[], None]) -> None:
        """Call this when the client leaves (e.g. to stop reading the upstream at once); the client is
        watched from ``start_stream`` or ``watch_disconnect`` on."""
        self._on_disconnect.append(callback)

    def watch_disconnect(self) -> None:
        """Notice the client leaving from now on: told by the server (the scope's ``gateway.disconnect``
        extension), else from ``receive()`` (once the body is read, the ASGI server's next message is
        ``http.disconnect``, when the client closes the connection)."""
        if self._watching:
            return
        if self._disconnects is not None:
            self._disconnects.add(self._lost)
            self._watching = True
        elif self._receive is not None:
            self._watcher = asyncio.ensure_future(self._watch_disconnect())
            self._watching = True

    def cancelled_on_disconnect(self) -> CancelledOnDisconnect:
        """``async with response.cancelled_on_disconnect():`` runs the block until the client leaves: then
        it is cancelled where it waits (an upstream request is closed at once) and raises ``client_closed()``."""
        return CancelledOnDisconnect(self)

    async def _watch_disconnect(self) -> None:
        assert self._receive is not None
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self._lost()

    def _lost(self) -> None:
        self.disconnected = True
        for callback in self._on_disconnect:
            callback()

    async def write(self, data: bytes) -> None:
        if self.disconnected:  # the server would drop the bytes silently
            raise ConnectionResetError("the client closed the connection")
        await self._send({"type": "http.response.body", "body": redaction.data(data), "more_body": True})

    def close(self) -> None:
        if self._disconnects is not None:
            self._disconnects.discard(self._lost)
        if self._watcher is not None:
            self._watcher.cancel()

    async def end(self) -> None:
        await self._send({"type": "http.response.body", "body": b""})
        self.finished = True


class CancelledOnDisconnect:
    """See ``Response.cancelled_on_disconnect``: asyncio.timeout's way of turning the cancellation it
    caused into an exception of its own, with the client's disconnect instead of a clock."""

    __slots__ = ("_cancelled", "_response", "_task")

    def __init__(self, response: Response) -> None:
        self._response = response
        self._task: asyncio.Task | None = None
        self._cancelled = False

    def _cancel(self) -> None:
        if self._task is not None and not self._cancelled:
            self._cancelled = True
            self._task.cancel()

    async def __aenter__(self) -> None:
        if self._response.disconnected:
            raise client_closed()
        self._task = asyncio.current_task()
        self._response.watch_disconnect()
        self._response._on_disconnect.append(self._cancel)

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        traceback: object) -> None:
        self._response._on_disconnect.remove(self._cancel)
        task, self._task = self._task, None
        if not self._cancelled or task is None or task.uncancel() > 0:  # (or cancelled by someone else too)
            return
        if exc is not None:  # the cancellation, or what the block made of it: the client left
            raise client_closed() from None


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionAbortedError("client went away while sending the request")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body"):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
