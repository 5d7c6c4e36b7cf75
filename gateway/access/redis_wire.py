"""A lean Redis connection for the limit store (its script calls, slot renewals, header reads):
commands are written straight to an asyncio transport and their replies parsed by hiredis, in
order, on the event loop.

redis-py's asyncio client spent ~53 us of CPU per script call here (a connection-pool lock, a task
for every write under a socket timeout, a timeout context per read, its retry loop); this costs ~9
us, and a request with limits makes one at most. Errors are redis-py's exception classes, so callers (and
``stores.unreachable``) treat them alike: ``ConnectionError`` when the server is away or the
connection drops, ``TimeoutError`` when it does not answer in time (the connection is then closed:
a late reply would answer the wrong call), ``NoScriptError`` / ``ResponseError`` for error replies.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from typing import Any
from urllib.parse import unquote

import hiredis
import redis
from redis.connection import parse_url
from redis.exceptions import NoScriptError


class _Protocol(asyncio.Protocol):
    """Replies resolve the waiting calls in the order the commands were written."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader()
        self.waiting: deque[asyncio.Future] = deque()
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while self.waiting:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:
                self.fail(redis.ConnectionError(f"Redis sent a malformed reply: {exc}"))
                return
            if reply is False:
                return
            future = self.waiting.popleft()
            if future.done():
                continue
            if isinstance(reply, hiredis.ReplyError):
                message = str(reply)
                future.set_exception(NoScriptError(message) if message.startswith("NOSCRIPT")
                                     else redis.ResponseError(message))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(redis.ConnectionError(f"Connection to Redis lost: {exc or 'closed by the server'}"))

    def fail(self, error: BaseException) -> None:
        self.lost = error
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)
        if self.transport is not None:
            self.transport.abort()


class RedisWire:
    """One connection, opened on first use and again after it was lost. Calls may overlap (they are
    pipelined); each waits at most ``timeout`` seconds for its reply."""

    def __init__(self, url: str, timeout: float) -> None:
        self.options = parse_url(url)
        self.timeout = timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future | None = None
        self._shas: dict[str, str] = {}

    async def _connected(self) -> _Protocol:
        protocol = self._protocol
        if protocol is not None and protocol.lost is None:
            return protocol
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        try:
            return await asyncio.shield(self._connecting)
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        options = self.options
        try:
            async with asyncio.timeout(self.timeout):
                if "path" in options:
                    _, protocol = await loop.create_unix_connection(_Protocol, options["path"])
                else:
                    _, protocol = await loop.create_connection(
                        _Protocol, options.get("host", "localhost"), options.get("port", 6379),
                        ssl=self._ssl_context())
        except (OSError, TimeoutError) as exc:
            raise redis.ConnectionError(f"Could not connect to Redis: {exc or type(exc).__name__}") from exc
        try:
            if options.get("password"):
                username, password = options.get("username"), unquote(options["password"])
                await self._send(protocol, ("AUTH", username, password) if username else ("AUTH", password))
            if options.get("db"):
                await self._send(protocol, ("SELECT", int(options["db"])))
        except redis.ResponseError as exc:  # a wrong password, or a database the server does not have
            protocol.fail(redis.ConnectionError("closed after a refused AUTH or SELECT"))
            raise redis.AuthenticationError(f"Redis refused the connection: {exc}") from exc
        except BaseException:
            protocol.fail(redis.ConnectionError("closed while it was being set up"))
            raise
        self._protocol = protocol
        return protocol

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.options.get("connection_class") is not redis.connection.SSLConnection:
            return None
        context = ssl.create_default_context()
        if str(self.options.get("ssl_cert_reqs", "required")).lower() in ("none", "optional"):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def call(self, *args: bytes | str | int) -> Any:
        """Send one command and wait for its reply."""
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            protocol = await self._connected()
        return await self._send(protocol, args)

    async def _send(self, protocol: _Protocol, args: tuple[bytes | str | int, ...]) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        assert protocol.transport is not None
        try:
            protocol.transport.write(hiredis.pack_command(args))
        except (RuntimeError, OSError) as exc:  # closed by the server before connection_lost came (uvloop raises)
            error = redis.ConnectionError(f"Connection to Redis lost: {exc}")
            protocol.fail(error)
            raise error from exc
        protocol.waiting.append(future)
        timer = loop.call_later(self.timeout, _expire, protocol, future, self.timeout)
        try:
            return await future
        finally:
            timer.cancel()

    async def run_script(self, script: str, keys: list[str], args: list[str]) -> Any:
        """EVALSHA, and EVAL once when the server does not have the script (it was restarted or flushed)."""
        sha = self._shas.get(script)
        if sha is None:
            sha = self._shas[script] = hashlib.sha1(script.encode()).hexdigest()
        try:
            return await self.call("EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self.call("EVAL", script, len(keys), *keys, *args)

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None


def _expire(protocol: _Protocol, future: asyncio.Future, timeout: float) -> None:
    """A call that got no reply in time: the connection is dropped (its replies can no longer be paired)."""
    if not future.done():
        protocol.fail(redis.TimeoutError(f"Redis did not answer within {timeout:g} s"))
