"""Response.cancelled_on_disconnect: the client's leaving cancels the block, which raises 499; any other
cancellation (a server shutting down) is left as it is. Each as the production server tells it (the
scope's gateway.disconnect callbacks) and as any ASGI server does (receive() says http.disconnect)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from gateway.edge.http import Response
from gateway.errors import GatewayError


@pytest.fixture(params=["told by the server", "from receive"])
def connection(request: pytest.FixtureRequest) -> Callable[[], tuple[Response, Callable[[], None]]]:
    """A response, and what the client's leaving does."""

    def make() -> tuple[Response, Callable[[], None]]:
        async def send(message: dict) -> None:
            pass

        if request.param == "told by the server":
            callbacks: set[Callable[[], None]] = set()

            def leave() -> None:
                for callback in list(callbacks):
                    callback()

            return Response(send, "req_1", None, callbacks), leave
        gone = asyncio.Event()

        async def receive() -> dict:
            await gone.wait()
            return {"type": "http.disconnect"}

        return Response(send, "req_1", receive), gone.set

    return make


def test_the_client_leaving_cancels_the_block_which_raises_client_closed(connection) -> None:
    async def scenario() -> float:
        response, leave = connection()
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, leave)
        started = loop.time()
        with pytest.raises(GatewayError) as raised:
            async with response.cancelled_on_disconnect():
                await asyncio.sleep(30)  # an upstream that would answer much later
        assert (raised.value.status, raised.value.type) == (499, "client_closed")
        assert response.disconnected
        await asyncio.sleep(0)  # the task is not cancelled any more
        response.close()
        return loop.time() - started

    assert asyncio.run(scenario()) < 10


def test_a_block_that_ends_first_is_untouched_and_a_later_disconnect_cancels_nothing(connection) -> None:
    async def scenario() -> None:
        response, leave = connection()
        async with response.cancelled_on_disconnect():
            await asyncio.sleep(0)
        leave()
        await asyncio.sleep(0.01)
        assert response.disconnected
        await asyncio.sleep(0.01)  # would raise CancelledError if the block's cancel had leaked out
        response.close()

    asyncio.run(scenario())


def test_a_cancellation_from_elsewhere_stays_a_cancellation(connection) -> None:
    async def scenario() -> None:
        response, _ = connection()

        async def request() -> None:
            async with response.cancelled_on_disconnect():
                await asyncio.sleep(30)

        task = asyncio.ensure_future(request())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        response.close()

    asyncio.run(scenario())


def test_a_client_gone_before_the_block_starts_is_refused_at_once(connection) -> None:
    async def scenario() -> None:
        response, _ = connection()
        response.disconnected = True
        with pytest.raises(GatewayError):
            async with response.cancelled_on_disconnect():
                raise AssertionError("the block ran")

    asyncio.run(scenario())
