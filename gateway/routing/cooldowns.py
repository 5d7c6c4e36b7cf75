"""Cooldowns (a circuit breaker) per deployment: a provider account serving one upstream model.

A deployment that fails ``failures`` times within ``window`` seconds (counted from the first) is in
cooldown for ``seconds``: while it lasts, requests try it only when nothing else is left (it is
sorted last, not dropped). A 429 or 503 whose ``Retry-After`` asks for longer cools it that long (at
most ``COOLDOWN_MAX_RETRY_AFTER_SECONDS``) at once. A success ends its cooldown and its count. A
failure while it is in cooldown (it was the last resort) starts a new cooldown.

Where the state lives: with ``REDIS_URL``, in Redis (gateway/routing/cooldown_redis.py), shared by
every worker and instance; each worker reads it whole (one small script) at most every
``COOLDOWN_SYNC_SECONDS`` and gets it back from each failure it reports, so a request reads its
worker's copy and makes no round trip of its own. Without Redis, in this process (``MemoryStore``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from django.conf import settings

from gateway.conf import gateway_settings

logger = logging.getLogger(__name__)

T = TypeVar("T")
Key = tuple[str, str]  # (provider account name, upstream model)

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


@dataclass(frozen=True, slots=True)
class Cooling:
    provider: str
    model: str
    until: float  # epoch seconds
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"provider": self.provider, "model": self.model,
                "until": datetime.fromtimestamp(self.until, UTC).isoformat(), "reason": self.reason}


@dataclass(frozen=True)
class State:
    """The deployments in cooldown, and those with failures counted in their current window."""

    cooling: dict[Key, Cooling] = field(default_factory=dict)
    failing: frozenset[Key] = frozenset()

    def cooling_now(self, now: float) -> list[Cooling]:
        return sorted((c for c in self.cooling.values() if c.until > now), key=lambda c: (c.provider, c.model))


class Store(ABC):
    """Failure counts and cooldowns. Each method answers the whole state after it acted."""

    @abstractmethod
    async def read(self, now: float) -> State: ...

    @abstractmethod
    async def fail(self, key: Key, policy: tuple[int, float, float], now: float, at_least: float,
                   reason: str) -> State:
        """Count a failure; ``at_least``: seconds of cooldown it asks for whatever the count (Retry-After)."""

    @abstractmethod
    async def reset(self, key: Key, now: float) -> State: ...

    @abstractmethod
    def read_sync(self, now: float) -> State: ...

    @abstractmethod
    def clear(self) -> None:
        """Forget everything (tests)."""

    @property
    def shared(self) -> bool:
        """Kept outside this process (a worker's copy must then be refreshed)."""
        return False


class MemoryStore(Store):
    """This process's cooldowns (its event loops and threads share it; each operation holds a lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cooling: dict[Key, Cooling] = {}
        self._fails: dict[Key, tuple[int, float, float]] = {}  # count, window start, window

    def _state(self, now: float) -> State:
        self._cooling = {k: c for k, c in self._cooling.items() if c.until > now}
        self._fails = {k: f for k, f in self._fails.items() if f[1] + f[2] > now}
        return State(dict(self._cooling), frozenset(self._fails))

    async def read(self, now: float) -> State:
        return self.read_sync(now)

    def read_sync(self, now: float) -> State:
        with self._lock:
            return self._state(now)

    async def fail(self, key: Key, policy: tuple[int, float, float], now: float, at_least: float,
                   reason: str) -> State:
        threshold, window, seconds = policy
        with self._lock:
            count, start, _ = self._fails.get(key, (0, now, window))
            if start + window <= now:
                count, start = 0, now
            count += 1
            current = self._cooling.get(key)
            cooling = current is not None and current.until > now
            cool = seconds if count >= threshold or cooling else 0.0
            cool = max(cool, at_least)
            if cool > 0:
                self._fails.pop(key, None)
                if current is None or now + cool > current.until:
                    self._cooling[key] = Cooling(key[0], key[1], now + cool, reason)
            else:
                self._fails[key] = (count, start, window)
            return self._state(now)

    async def reset(self, key: Key, now: float) -> State:
        with self._lock:
            self._cooling.pop(key, None)
            self._fails.pop(key, None)
            return self._state(now)

    def clear(self) -> None:
        with self._lock:
            self._cooling.clear()
            self._fails.clear()


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
        except Exception:
            logger.warning("could not read the cooldowns; using this worker's copy", exc_info=True)
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
        except Exception:
            logger.warning("could not count a failure of %s for cooldowns", key, exc_info=True)

    async def succeeded(self, key: Key) -> None:
        """The deployment answered: its count and cooldown end (a store call only if it had either)."""
        state = self._state if self.store().shared else await self.store().read(clock())
        if key not in state.failing and key not in state.cooling:
            return
        try:
            self._keep(await self.store().reset(key, clock()))
        except Exception:
            logger.warning("could not reset the cooldown of %s", key, exc_info=True)

    async def listing(self) -> list[dict[str, Any]]:
        """The deployments in cooldown now, read from the store (for /health)."""
        now = clock()
        return [c.as_dict() for c in (await self.store().read(now)).cooling_now(now)]

    def listing_sync(self) -> list[Cooling]:
        """The same, from synchronous code (the admin)."""
        now = clock()
        return self.store().read_sync(now).cooling_now(now)

    def clear(self) -> None:
        """Forget every cooldown and count, in the store and here (tests)."""
        for store in self._stores.values():
            store.clear()
        self._state, self._read_at = State(), float("-inf")


cooldowns = Cooldowns()
