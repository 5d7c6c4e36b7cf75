"""A limit store in this process's memory: the fallback while Redis is unreachable
(``GATEWAY_REDIS_FAILURE=open``, gateway/access/stores.py).

Exact within one worker process, not across them: while it serves, each worker counts on its own
(an rpm limit of 60 may let about workers x 60 requests a minute through). A budget counter it has
not seen starts from the request log's spend for its period, as the other stores' do.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from asgiref.sync import sync_to_async

from gateway.access.database_store import logged_spend
from gateway.access.limits import BUDGET, Adjustments, Counter, Outcome, Store


class MemoryStore(Store):
    """Counters and parallel slots in dicts, one lock for every step (each step is atomic)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, tuple[int, float | None]] = {}  # key -> (value, expires)
        self._slots: dict[str, dict[str, float]] = {}  # key -> {holder: lease end}

    def _value(self, counter: Counter, now: float) -> int | None:
        if counter.slot:
            held = self._slots.get(counter.key, {})
            for holder in [h for h, until in held.items() if until <= now]:
                del held[holder]
            return len(held)
        found = self._values.get(counter.key)
        if found is None or (found[1] is not None and found[1] < now):
            return None
        return found[0]

    def _take(self, counters: Sequence[Counter], holder: str, now: float, seeds: dict[str, int]) -> Outcome | None:
        with self._lock:
            values = []
            for counter in counters:
                value = self._value(counter, now)
                if value is None:
                    if counter.kind == BUDGET and counter.key not in seeds:
                        return None  # to be read from the request log first
                    value = seeds.get(counter.key, 0)
                    self._values[counter.key] = (value, counter.expires_at)
                values.append(value)
            refused = next((i for i, (counter, value) in enumerate(zip(counters, values, strict=True))
                            if value + counter.amount > counter.limit), None)
            if refused is None:
                for counter in counters:
                    if counter.slot:
                        self._slots.setdefault(counter.key, {})[holder] = counter.expires_at or now
                    elif counter.amount:
                        value, expires = self._values[counter.key]
                        self._values[counter.key] = (value + counter.amount, expires)
            return Outcome(refused is None, values, refused)

    @staticmethod
    def _seeds(counters: Sequence[Counter]) -> dict[str, int]:
        return {counter.key: logged_spend(counter) for counter in counters if counter.kind == BUDGET}

    def take_sync(self, counters: Sequence[Counter], holder: str, now: float) -> Outcome:
        return self._take(counters, holder, now, {}) or self._take(counters, holder, now, self._seeds(counters))

    async def take(self, counters: Sequence[Counter], holder: str, now: float) -> Outcome:
        outcome = self._take(counters, holder, now, {})
        if outcome is None:
            outcome = self._take(counters, holder, now, await sync_to_async(self._seeds)(counters))
        assert outcome is not None
        return outcome

    async def settle_many(self, batch: Sequence[tuple[Adjustments, str]]) -> None:
        with self._lock:
            for adjustments, holder in batch:
                for counter, delta in adjustments:
                    if counter.slot:
                        self._slots.get(counter.key, {}).pop(holder, None)
                    elif delta and counter.key in self._values:
                        value, expires = self._values[counter.key]
                        self._values[counter.key] = (max(value + delta, 0), expires)

    async def renew(self, slots: Sequence[tuple[str, str]], until: float) -> None:
        with self._lock:
            for key, holder in slots:
                held = self._slots.get(key, {})
                if holder in held:
                    held[holder] = until

    async def peek(self, counters: Sequence[Counter], now: float) -> list[int]:
        with self._lock:
            return [self._value(counter, now) or 0 for counter in counters]
