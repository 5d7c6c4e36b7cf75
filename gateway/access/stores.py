"""Which limit store serves this process, the settlements it sends in batches, and the leases of
the parallel slots it holds.

With ``REDIS_URL`` the counters are in Redis (gateway/access/redis_store.py): one Lua script per
check-and-take, shared by every worker and instance. Without it they are in the database
(gateway/access/database_store.py): exact across the workers of one machine (SQLite) or of every
instance sharing a PostgreSQL, at the price of a write transaction per step.

When Redis is unreachable (refused, dropped, or not answering within its timeout),
``GATEWAY_REDIS_FAILURE`` decides: ``open`` (the default) counts in this process's memory meanwhile
(gateway/access/memory_store.py: limits hold per worker, not across them) and tries Redis again
every ``REDIS_RETRY_SECONDS``; ``closed`` answers requests that have limits with a 503
``limits_unavailable``. Other Redis users (the provider cooldowns) follow the same setting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from gateway.access.limits import Adjustments, Counter, Outcome, Store
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

REDIS_RETRY_SECONDS = 5.0


def redis_failure_open() -> bool:
    """``GATEWAY_REDIS_FAILURE``: True for ``open`` (serve, counting per process), False for ``closed`` (503)."""
    mode = (gateway_settings.REDIS_FAILURE or "open").strip().lower()
    if mode not in ("open", "closed"):
        raise ImproperlyConfigured(f"GATEWAY_REDIS_FAILURE must be 'open' or 'closed', not {mode!r}")
    return mode == "open"


def unreachable(exc: BaseException) -> bool:
    """Is this the store being away (refused, dropped, timed out), rather than a refusal of what was sent?"""
    import redis
    from django.db import InterfaceError, OperationalError

    return isinstance(exc, (redis.ConnectionError, redis.TimeoutError, OSError, TimeoutError, OperationalError,
                            InterfaceError))


class RedisOrMemory(Store):
    """The Redis store, and this process's memory while Redis is unreachable (``GATEWAY_REDIS_FAILURE=open``).

    A reservation settles in the store that took it; the memory store's counts are not carried into
    Redis when it returns (Redis's own counts resume from where they were)."""

    def __init__(self, redis_store: Store) -> None:
        from gateway.access.memory_store import MemoryStore

        self.redis = redis_store
        self.memory = MemoryStore()
        self._down_until = 0.0
        self._in_memory: set[str] = set()  # holders whose reservation the memory store took

    def _use_memory(self) -> bool:
        return time.monotonic() < self._down_until

    def _failed(self, exc: BaseException) -> None:
        if not unreachable(exc) or not redis_failure_open():
            raise exc
        if not self._use_memory():
            logger.error("Redis is unreachable (%s: %s): limits are counted per process until it answers again "
                         "(GATEWAY_REDIS_FAILURE=open)", type(exc).__name__, exc)
        self._down_until = time.monotonic() + REDIS_RETRY_SECONDS

    async def take(self, counters: Sequence[Counter], holder: str, now: float) -> Outcome:
        if not self._use_memory():
            try:
                return await self.redis.take(counters, holder, now)
            except Exception as exc:
                self._failed(exc)
        self._in_memory.add(holder)
        return await self.memory.take(counters, holder, now)

    def take_sync(self, counters: Sequence[Counter], holder: str, now: float) -> Outcome:
        if not self._use_memory():
            try:
                return self.redis.take_sync(counters, holder, now)
            except Exception as exc:
                self._failed(exc)
        return self.memory.take_sync(counters, holder, now)

    async def settle_many(self, batch: Sequence[tuple[Adjustments, str]]) -> None:
        in_memory = [item for item in batch if item[1] in self._in_memory]
        in_redis = [item for item in batch if item[1] not in self._in_memory]
        for _, holder in in_memory:
            self._in_memory.discard(holder)
        if in_memory:
            await self.memory.settle_many(in_memory)
        if in_redis:
            await self.redis.settle_many(in_redis)

    async def renew(self, slots: Sequence[tuple[str, str]], until: float) -> None:
        await self.memory.renew([slot for slot in slots if slot[1] in self._in_memory], until)
        in_redis = [slot for slot in slots if slot[1] not in self._in_memory]
        if in_redis:
            await self.redis.renew(in_redis, until)

    async def close(self) -> None:
        await self.redis.close()  # type: ignore[attr-defined]

    async def peek(self, counters: Sequence[Counter], now: float) -> list[int]:
        if not self._use_memory():
            try:
                return await self.redis.peek(counters, now)
            except Exception as exc:
                self._failed(exc)
        return await self.memory.peek(counters, now)


def current() -> Store:
    """The configured store: ``GATEWAY_LIMITS_STORE`` (``redis`` / ``database``), else Redis when
    ``REDIS_URL`` is set, else the database."""
    choice = gateway_settings.LIMITS_STORE or ("redis" if settings.REDIS_URL else "database")
    key = (choice, settings.REDIS_URL)
    store = _stores.get(key)
    if store is None:
        if choice == "redis":
            from gateway.access.redis_store import RedisStore

            store = RedisOrMemory(RedisStore(settings.REDIS_URL))
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
