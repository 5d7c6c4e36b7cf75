"""Cooldowns (a circuit breaker) per deployment: a provider account serving one upstream model.

A deployment that fails ``failures`` times within ``window`` seconds (counted from the first) is in
cooldown for ``seconds``: while it lasts, requests try it only when nothing else is left (it is
sorted last, not dropped). When the failure that starts it is a 429 or 503 whose ``Retry-After``
(seconds or an HTTP date) asks for longer, it lasts that long, at most
``COOLDOWN_MAX_RETRY_AFTER_SECONDS``. A success ends its cooldown and its count. A failure while it
is in cooldown (it was the last resort) starts a new cooldown.

Where the state lives: with ``REDIS_URL``, in Redis (gateway/routing/cooldown_redis.py), shared by
every worker and instance; each worker reads it whole (one small script) at most every
``COOLDOWN_SYNC_SECONDS`` and gets it back from each failure it reports, so a request reads its
worker's copy and makes no round trip of its own. Without Redis, in this process (``MemoryStore``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from django.conf import settings

from gateway.conf import gateway_settings
from gateway.routing.cooldown_store import Cooling, Key, MemoryStore, State, Store

logger = logging.getLogger(__name__)

T = TypeVar("T")

clock: Callable[[], float] = time.time  # wall clock: instances compare it through Redis (tests replace it)


@dataclass(frozen=True, slots=True)
class Policy:
    """When a deployment goes into cooldown; ``None`` values are the GATEWAY_COOLDOWN_* settings."""

    failures: int | None = None
    window: float | None = None
    seconds: float | None = None

    def resolved(self) -> tuple[int, float, float]:
        config = gateway_settings
        return (config.COOLDOWN_FAILURES if self.failures is None else self.failures,
                config.COOLDOWN_WINDOW_SECONDS if self.window is None else self.window,
                config.COOLDOWN_SECONDS if self.seconds is None else self.seconds)


def retry_after_seconds(value: str | None, now: float) -> float:
    """``Retry-After`` as seconds from now (delta-seconds or an HTTP date), within
    [0, COOLDOWN_MAX_RETRY_AFTER_SECONDS]; 0 when absent or unreadable."""
    if not value or len(value) > 64:
        return 0.0
    value = value.strip()
    if re.fullmatch(r"[0-9]{1,12}", value):
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return 0.0
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    return max(0.0, min(seconds, float(gateway_settings.COOLDOWN_MAX_RETRY_AFTER_SECONDS)))


class Cooldowns:
    """This process's view of the cooldowns: the store, and (for a shared one) its last state read."""

    def __init__(self) -> None:
        self._stores: dict[str, Store] = {}
        self._state = State()
        self._read_at = float("-inf")  # monotonic
        self._reading: asyncio.Future | None = None

    def store(self) -> Store:
        url = settings.REDIS_URL or ""
        found = self._stores.get(url)
        if found is None:
            if url:
                from gateway.routing.cooldown_redis import RedisCooldowns

                found = RedisCooldowns(url)
            else:
                found = MemoryStore()
            self._stores[url] = found
        return found

    def _keep(self, state: State) -> State:
        self._state, self._read_at = state, time.monotonic()
        return state

    async def state(self) -> State:
        """The current state: this worker's copy, read again when older than COOLDOWN_SYNC_SECONDS (one
        read however many requests wait); a store that cannot be read leaves the copy as it is."""
        store = self.store()
        if not store.shared:
            return await store.read(clock())
        if time.monotonic() - self._read_at < gateway_settings.COOLDOWN_SYNC_SECONDS:
            return self._state
        loop = asyncio.get_running_loop()
        pending = self._reading
        if pending is None or pending.get_loop() is not loop:
            pending = self._reading = loop.create_task(store.read(clock()))
        try:
            return self._keep(await asyncio.shield(pending))
        except Exception as exc:  # one line, no traceback: an outage would print one per interval
            logger.warning("could not read the cooldowns (%s: %s); using this worker's copy", type(exc).__name__, exc)
            self._read_at = time.monotonic()  # (not again for every request until the next interval)
            return self._state
        finally:
            if self._reading is pending and pending.done():
                self._reading = None

    async def order(self, items: Sequence[T], key: Callable[[T], Key]) -> list[T]:
        """``items`` in their order, those in cooldown moved to the end (soonest to end first)."""
        state = await self.state()
        if not state.cooling:
            return list(items)
        now = clock()
        ready = [item for item in items if not self._until(state, key(item), now)]
        cooling = sorted((item for item in items if self._until(state, key(item), now)),
                         key=lambda item: self._until(state, key(item), now))
        return ready + cooling

    @staticmethod
    def _until(state: State, key: Key, now: float) -> float:
        cooling = state.cooling.get(key)
        return cooling.until if cooling is not None and cooling.until > now else 0.0

    async def failed(self, key: Key, policy: Policy, reason: str, retry_after: str | None = None) -> None:
        """Count one failure of the deployment ``key`` (never raises: cooldowns must not fail a request)."""
        threshold, window, seconds = policy.resolved()
        if threshold <= 0:
            return
        now = clock()
        try:
            self._keep(await self.store().fail(key, (threshold, window, seconds), now,
                                               retry_after_seconds(retry_after, now), reason[:300]))
        except Exception as exc:
            logger.warning("could not count a failure of %s for cooldowns (%s: %s)", key, type(exc).__name__, exc)

    async def succeeded(self, key: Key) -> None:
        """The deployment answered: its count and cooldown end (a store call only if it had either)."""
        state = self._state if self.store().shared else await self.store().read(clock())
        if key not in state.failing and key not in state.cooling:
            return
        try:
            self._keep(await self.store().reset(key, clock()))
        except Exception as exc:
            logger.warning("could not reset the cooldown of %s (%s: %s)", key, type(exc).__name__, exc)

    async def listing(self) -> list[dict[str, Any]]:
        """The deployments in cooldown now, read from the store (for /health)."""
        now = clock()
        return [c.as_dict() for c in (await self.store().read(now)).cooling_now(now)]

    def listing_sync(self) -> list[Cooling]:
        """The same, from synchronous code (the admin)."""
        now = clock()
        return self.store().read_sync(now).cooling_now(now)

    def clear(self) -> None:
        """Forget every cooldown and count, in the current store and here (tests)."""
        store = self._stores.get(settings.REDIS_URL or "")
        self._state, self._read_at = State(), float("-inf")
        if store is not None:
            try:
                store.clear()
            except Exception:  # (a Redis that is gone has nothing to forget)
                logger.warning("could not clear the cooldowns", exc_info=True)


cooldowns = Cooldowns()
