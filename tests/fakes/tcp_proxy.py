"""A TCP proxy that tests put between the gateway and PostgreSQL or Redis, and cut.

``cut("refuse")``: new connections are closed at once and the open ones dropped (a database that is
down); ``cut("hang")``: new connections are accepted and nothing passes any more, either way, on new or
open ones (a database that hangs); ``restore()`` drops what hung and passes traffic again.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode = "pass"
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)

    def start(self) -> TcpProxy:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            async with server:
                await server.serve_forever()

        with contextlib.suppress(asyncio.CancelledError, RuntimeError):
            self._loop.run_until_complete(serve())

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "refuse":
            writer.transport.abort()
            return
        self._writers.add(writer)
        up_writer: asyncio.StreamWriter | None = None
        try:
            while self.mode == "hang":
                await asyncio.sleep(0.05)
            if writer.is_closing():
                return
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            self._writers.add(up_writer)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer),
                                 return_exceptions=True)
        except OSError:
            pass
        finally:
            for end in (writer, up_writer):
                if end is not None:
                    self._writers.discard(end)
                    end.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                while self.mode == "hang" and not writer.is_closing():
                    await asyncio.sleep(0.05)
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()

    def _drop_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()

    def cut(self, mode: str) -> None:
        assert mode in ("refuse", "hang")

        def apply() -> None:
            self.mode = mode
            if mode == "refuse":
                self._drop_all()

        self._loop.call_soon_threadsafe(apply)

    def restore(self) -> None:
        def apply() -> None:
            self._drop_all()  # what hung ends with an error; the next connections pass
            self.mode = "pass"

        self._loop.call_soon_threadsafe(apply)

    def stop(self) -> None:
        def apply() -> None:
            self._drop_all()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()

        self._loop.call_soon_threadsafe(apply)
        self._thread.join(5)
