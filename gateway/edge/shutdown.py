"""Graceful shutdown of a worker: what is still running when the grace period ends.

On SIGTERM the worker stops accepting connections and lets the requests it has finish (uvicorn's
shutdown, started by gateway/edge/worker.py, which calls ``drain.begin``). ``GATEWAY_GRACEFUL_TIMEOUT``
seconds later every hot-path request still running is cancelled: one that has not answered yet gets
a 503 ``server_shutting_down``; a stream gets that error as its last event
(``data: {"error": ...}``), so no client sees its stream end without a word. Their log rows say so
(status 503), and the lifespan's shutdown then writes every row.
"""

from __future__ import annotations

import asyncio
import logging

logger = logging.getLogger(__name__)

SHUTDOWN_MESSAGE = "grace period over"


class Drain:
    """The hot-path requests in flight in this worker, and whether the grace period has ended."""

    def __init__(self) -> None:
        self.active: set[asyncio.Task] = set()
        self.cutting = False
        self.draining = False
        self._timer: asyncio.TimerHandle | None = None

    def begin(self, grace: float) -> None:
        """Shutdown has started: in ``grace`` seconds, cut what is still running."""
        if self.draining:
            return
        self.draining = True
        self._timer = asyncio.get_running_loop().call_later(max(grace, 0.0), self.cut)

    def cut(self) -> None:
        self.cutting = True
        if self.active:
            logger.warning("graceful shutdown: the grace period is over; ending %d requests still running "
                           "with a 503 (streams: an error event)", len(self.active))
        for task in list(self.active):
            task.cancel(SHUTDOWN_MESSAGE)

    def reset(self) -> None:  # (tests)
        if self._timer is not None:
            self._timer.cancel()
        self.__init__()  # type: ignore[misc]


drain = Drain()
