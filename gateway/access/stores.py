"""Which limit store serves this process, the settlements it sends in batches, and the leases of
the parallel slots it holds.

With ``REDIS_URL`` the counters are in Redis (gateway/access/redis_store.py): one Lua script per
check-and-take, shared by every worker and instance. Without it they are in the database
(gateway/access/database_store.py): exact across the workers of one machine (SQLite) or of every
instance sharing a PostgreSQL, at the price of a write transaction per step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from django.conf import settings

from gateway.access.limits import Adjustments, Store
from gateway.conf import gateway_settings

logger = logging.getLogger(__name__)

_pending: set[asyncio.Task] = set()


def schedule(work: Coroutine[Any, Any, None]) -> None:
    """Run limit work in the background of this event loop (kept referenced until it is done)."""
    task = asyncio.get_running_loop().create_task(work)
    _pending.add(task)
    task.add_done_callback(_finished)


def _finished(task: asyncio.Task) -> None:
    _pending.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.warning("limit work failed in the background", exc_info=task.exception())


async def drain() -> None:
    """Wait until the background limit work of this event loop is done (tests; shutdown)."""
    loop = asyncio.get_running_loop()
    while waiting := [task for task in _pending if task.get_loop() is loop]:
        await asyncio.gather(*waiting, return_exceptions=True)


class Settlements:
    """Settlements go to their store in batches: one store call carries every settlement that arrived
    while the previous call was on its way (one per request at low load, far fewer under load)."""

    def __init__(self) -> None:
        self._queues: dict[tuple[asyncio.AbstractEventLoop, int], list[tuple[Adjustments, str]]] = {}

    def add(self, store: Store, adjustments: Adjustments, holder: str) -> None:
        key = (asyncio.get_running_loop(), id(store))
        queue = self._queues.get(key)
        if queue is not None:  # a flush is scheduled or running: it takes this one too
            queue.append((adjustments, holder))
            return
        self._queues[key] = [(adjustments, holder)]
        schedule(self._flush(key, store))

    async def _flush(self, key: tuple[asyncio.AbstractEventLoop, int], store: Store) -> None:
        try:
            while batch := self._queues.get(key):
                self._queues[key] = []
                try:
                    await store.settle_many(batch)
                except Exception:  # their reservations stay until their windows end; slots free at lease end
                    logger.warning("could not settle %d limit reservations", len(batch), exc_info=True)
        finally:
            self._queues.pop(key, None)


settlements = Settlements()

_stores: dict[tuple[str, str], Store] = {}


def current() -> Store:
    """The configured store: ``GATEWAY_LIMITS_STORE`` (``redis`` / ``database``), else Redis when
    ``REDIS_URL`` is set, else the database."""
    choice = gateway_settings.LIMITS_STORE or ("redis" if settings.REDIS_URL else "database")
    key = (choice, settings.REDIS_URL)
    store = _stores.get(key)
    if store is None:
        if choice == "redis":
            from gateway.access.redis_store import RedisStore

            store = RedisStore(settings.REDIS_URL)
        elif choice == "database":
            from gateway.access.database_store import DatabaseStore

            store = DatabaseStore()
        else:
            raise ValueError(f"GATEWAY_LIMITS_STORE must be 'redis' or 'database', not {choice!r}")
        _stores[key] = store
    return store


class Leases:
    """Keeps this process's parallel slots alive: every third of the lease, one ``renew`` per store
    extends the slots of the requests still running. A crashed worker renews nothing, so its slots
    free themselves within one lease."""

    def __init__(self) -> None:
        self.held: dict[str, tuple[Store, list[str], Callable[[], float]]] = {}
        self._task: asyncio.Task | None = None

    def hold(self, store: Store, holder: str, keys: list[str], clock: Callable[[], float]) -> None:
        self.held[holder] = (store, keys, clock)
        task = self._task
        loop = asyncio.get_running_loop()
        if task is None or task.done() or task.get_loop() is not loop:
            self._task = loop.create_task(self._keep())

    def release(self, holder: str) -> None:
        self.held.pop(holder, None)

    async def _keep(self) -> None:
        while self.held:
            lease = gateway_settings.LIMITS_PARALLEL_LEASE_SECONDS
            await asyncio.sleep(lease / 3)
            await self.renew_now(lease)

    async def renew_now(self, lease: float | None = None) -> None:
        lease = gateway_settings.LIMITS_PARALLEL_LEASE_SECONDS if lease is None else lease
        by_store: dict[int, tuple[Store, list[tuple[str, str]], float]] = {}
        for holder, (store, keys, clock) in list(self.held.items()):
            entry = by_store.setdefault(id(store), (store, [], clock() + lease))
            entry[1].extend((key, holder) for key in keys)
        for store, slots, until in by_store.values():
            try:
                await store.renew(slots, until)
            except Exception:  # the next round tries again; a lease is three rounds long
                logger.warning("could not renew %d parallel-limit slots", len(slots), exc_info=True)


leases = Leases()
