"""A real HTTP server on 127.0.0.1 in a background thread, for fake upstreams (aiohttp.web)."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Recorded:
    """One request the fake received: headers are lower-cased."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


@dataclass
class Failure:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    """A network fault for one request (see ``FakeServer.fault_next``)."""

    kind: str
    after: int = 0
    seconds: float = 60.0


FAULT = web.RequestKey("fault", Fault)
FAULTS = ("hang", "hang_after", "drop_after", "truncate_after", "malformed_after", "error_after", "html")
MALFORMED_EVENT = b'data: {"choices": [{"delta": {"content": "x"\n\n'
ERROR_EVENT = (b'data: {"error": {"message": "The server had an error while processing your request.", '
               b'"type": "server_error", "param": null, "code": null}}\n\n')


class FakeServer:
    """Subclasses add routes in `routes()`; tests read `requests` and script failures."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._failures: list[Failure | Fault] = []
        # time.monotonic() of each moment a held request (hang, hang_after) saw its client go away
        self.disconnects: list[float] = []
        self._failing: Failure | None = None
        self.break_after: int | None = None
        self.stall_seconds = 0.0
        self.event_delay = 0.0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            app = web.Application(middlewares=[self._record], client_max_size=64 * 1024 * 1024)
            app.add_routes(self.routes())
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name=type(self).__name__, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"{type(self).__name__} did not start")

    def stop(self) -> None:
        if self._loop and self._runner:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    # -- scripting -------------------------------------------------------------------------------
    def reset(self) -> None:
        self.requests.clear()
        self._failures.clear()
        self._failing = None
        self.disconnects.clear()
        self.break_after = None
        self.stall_seconds = 0.0
        self.event_delay = 0.0

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    def fail_next_raw(self, status: int, body: bytes, content_type: str = "application/json",
                      headers: dict[str, str] | None = None) -> None:
        """The next request gets exactly this response."""
        self._failures.append(Failure(status, body, content_type, headers or {}))

    def fail_every(self, status: int, body: bytes, content_type: str = "application/json",
                   headers: dict[str, str] | None = None) -> None:
        """Every request (after those ``fail_next_raw`` queued) gets exactly this response, until ``reset``
        (a deployment that stays broken: 500, 429, a 200 of malformed JSON or of the wrong content type)."""
        self._failing = Failure(status, body, content_type, headers or {})

    def fault_next(self, kind: str, after: int = 0, seconds: float = 60.0) -> None:
        """The next request meets a network fault (queued with ``fail_next_raw``'s failures, in order):

        - ``hang``: no answer at all (no headers) for ``seconds``, or until the client leaves;
        - ``hang_after``: the headers and ``after`` stream events (or body bytes), then nothing more;
        - ``drop_after``: ``after`` events (or body bytes, of a declared longer body), then the
          connection is cut;
        - ``truncate_after``: ``after`` events (or body bytes) and a clean end: a stream without its
          last events, a complete HTTP answer whose JSON is cut;
        - ``malformed_after`` / ``error_after``: ``after`` events, then one that is not JSON / an
          OpenAI error event, then (malformed) the rest of the stream;
        - ``html``: a 200 web page instead of the answer.

        A held request notes when its client went away in ``disconnects``.
        """
        assert kind in FAULTS, kind
        self._failures.append(Fault(kind, after, seconds))

    async def hold(self, request: web.Request, seconds: float) -> None:
        """Wait ``seconds`` or until the client closes the connection (noted in ``disconnects``)."""
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end:
                transport = request.transport
                if transport is None or transport.is_closing():
                    self.disconnects.append(time.monotonic())
                    return
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:  # (the server cancels a handler whose client left)
            self.disconnects.append(time.monotonic())
            raise

    async def _faulty_body(self, request: web.Request, answer: web.Response, fault: Fault) -> web.StreamResponse:
        body = answer.body if isinstance(answer.body, bytes) else b""
        if fault.kind == "truncate_after":
            return web.Response(status=answer.status, body=body[:fault.after], content_type=answer.content_type)
        response = web.StreamResponse(status=answer.status, headers={"Content-Type": answer.content_type})
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[:fault.after])
        if fault.kind == "hang_after":
            await self.hold(request, fault.seconds)
        elif request.transport is not None:
            request.transport.close()
        return response

    def stall(self, seconds: float) -> None:
        """Every request waits this long before any answer (a hung upstream)."""
        self.stall_seconds = seconds

    def break_stream_after(self, chunks: int) -> None:
        """Streams send this many events, then the connection is cut."""
        self.break_after = chunks

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Recorded(request.method, request.path, dict(request.query),
                                      {k.lower(): v for k, v in request.headers.items()}, body))
        # The failure is taken when the request arrives, not after a stall: a request still stalled from an
        # earlier test (its client gave up) must not wake up and take the failure the next test queued.
        failure = self._failures.pop(0) if self._failures else self._failing
        if self.stall_seconds:
            await asyncio.sleep(self.stall_seconds)
        if isinstance(failure, Fault):
            if failure.kind == "hang":
                await self.hold(request, failure.seconds)
                return web.Response(status=504)
            if failure.kind == "html":
                return web.Response(body=b"<html><body>Please log in</body></html>", content_type="text/html")
            request[FAULT] = failure
            answer = await handler(request)
            if type(answer) is web.Response and failure.kind in ("hang_after", "drop_after", "truncate_after"):
                return await self._faulty_body(request, answer, failure)
            return answer
        if failure is not None:
            return web.Response(status=failure.status, body=failure.body, content_type=failure.content_type,
                                headers=failure.headers)
        return await handler(request)

    # -- helpers for subclasses ------------------------------------------------------------------
    @staticmethod
    def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json",
                            headers=headers)

    async def sse(self, request: web.Request, events: list[bytes]) -> web.StreamResponse:
        """Send pre-framed SSE events; honours break_stream_after by cutting the connection."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        fault = request.get(FAULT)
        for sent, event in enumerate(events):
            if self.break_after is not None and sent >= self.break_after:
                request.transport.close()
                return response
            if fault is not None and sent == fault.after:
                if fault.kind == "hang_after":
                    await self.hold(request, fault.seconds)
                    return response
                if fault.kind == "drop_after":
                    request.transport.close()
                    return response
                if fault.kind == "truncate_after":
                    break
                await response.write(MALFORMED_EVENT if fault.kind == "malformed_after" else ERROR_EVENT)
                if fault.kind == "error_after":
                    break
            await response.write(event)
            if self.event_delay:
                await asyncio.sleep(self.event_delay)
        await response.write_eof()
        return response


def words(text: str) -> list[str]:
    """Split text into stream pieces that join back to it: 'a b' -> ['a', ' b']."""
    parts = text.split(" ")
    return [parts[0]] + [" " + p for p in parts[1:]]


def count_tokens(text: str) -> int:
    """The fakes' stand-in tokenizer: one token per whitespace-separated word, at least 1."""
    return max(1, len(text.split()))
