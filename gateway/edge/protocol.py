"""The production server's HTTP protocol: uvicorn's httptools protocol, with its writes coalesced and
the client's leaving told to the request directly.

- uvicorn writes a response's status line and headers on ``http.response.start`` and the body on
  ``http.response.body``: two system calls per answer, each waking the client. Held until the end
  of the loop's turn, they go as one (an answer costs one syscall fewer; a stream's events written
  together leave together), and nothing waits longer than that turn.
- A request learns that its client left (gateway/edge/http.py ``Response.watch_disconnect``) from
  the scope's ``gateway.disconnect`` extension: a set of callbacks the connection calls when it is
  lost. Without it (another ASGI server) a task per request waits on ``receive()`` for the
  ``http.disconnect`` message instead; this costs nothing until the connection goes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.edge.http import DISCONNECT


class CoalescingTransport:
    """A transport whose ``write`` keeps the data until the loop's turn ends; everything else is the
    real transport's (a close sends what is kept first, an abort drops it)."""

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GatewayHttpProtocol(HttpToolsProtocol):
    disconnect_callbacks: set[Callable[[], None]]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.disconnect_callbacks = set()
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {**self.scope.get("extensions", {}), DISCONNECT: self.disconnect_callbacks}

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        callbacks, self.disconnect_callbacks = self.disconnect_callbacks, set()
        for callback in list(callbacks):
            callback()
