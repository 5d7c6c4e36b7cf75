"""Where cooldowns are kept: the ``Store`` interface, and ``MemoryStore`` (this process's).

The Redis one is gateway/routing/cooldown_redis.py; gateway/routing/cooldowns.py says what a
cooldown is and chooses the store.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime

Key = tuple[str, str]  # (provider account name, upstream model)


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
        """Count a failure; should it start a cooldown, that lasts at least ``at_least`` seconds (a Retry-After)."""

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
            if count >= threshold or cooling:
                cool = max(seconds, at_least, 0.001)
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
