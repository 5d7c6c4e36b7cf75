"""The production server's HTTP protocol: what one turn of the event loop writes leaves in one send
(an answer's headers and body together), nothing waits longer than that turn, a close sends what is
kept and an abort drops it; a client that leaves is told to the request at once, and a request that
is over is no longer told."""

from __future__ import annotations

import asyncio

from gateway.edge.http import Response
from gateway.edge.protocol import CoalescingTransport


class RecordingTransport:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = self.aborted = False

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str) -> str:
        return f"info {name}"


def test_writes_of_one_turn_leave_together_and_the_next_turns_separately() -> None:
    async def work() -> list[bytes]:
        real = RecordingTransport()
        transport = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        transport.write(b"{}")
        assert real.sent == []  # kept until the turn ends
        await asyncio.sleep(0)
        transport.write(b"data: 1\n\n")
        await asyncio.sleep(0)
        return real.sent

    assert asyncio.run(work()) == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}", b"data: 1\n\n"]


def test_a_close_sends_what_is_kept_and_an_abort_drops_it() -> None:
    async def work() -> tuple[RecordingTransport, RecordingTransport]:
        closed, aborted = RecordingTransport(), RecordingTransport()
        loop = asyncio.get_running_loop()
        one, other = CoalescingTransport(closed, loop), CoalescingTransport(aborted, loop)  # type: ignore[arg-type]
        one.write(b"last bytes")
        one.close()
        other.write(b"never sent")
        other.abort()
        await asyncio.sleep(0)
        return closed, aborted

    closed, aborted = asyncio.run(work())
    assert closed.sent == [b"last bytes"] and closed.closed
    assert aborted.sent == [] and aborted.aborted


def test_everything_else_is_the_real_transports() -> None:
    async def work() -> str:
        transport = CoalescingTransport(RecordingTransport(), asyncio.get_running_loop())  # type: ignore[arg-type]
        return transport.get_extra_info("peername")

    assert asyncio.run(work()) == "info peername"


def test_a_request_is_told_its_client_left_until_it_is_over() -> None:
    async def send(message: dict) -> None:
        pass

    callbacks: set = set()
    response = Response(send, "req_1", None, callbacks)
    response.watch_disconnect()
    response.watch_disconnect()  # (once)
    assert len(callbacks) == 1
    response.close()  # over: a later lost connection concerns the next request only
    assert callbacks == set()
