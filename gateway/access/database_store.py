"""The database limit store: exact across every process that shares the database.

``LimitCounter`` rows hold one window each (requests, tokens or 1e-8 USD) and serve as the lock of a
parallel limit, whose requests in flight are ``LimitSlot`` rows. Each step is one transaction in a
worker thread, off the event loop: on SQLite every transaction is ``BEGIN IMMEDIATE`` (settings),
so the steps of all the machine's workers run one after another; on PostgreSQL the counter rows are
locked (``SELECT ... FOR UPDATE``, in key order) for the transaction. A budget counter that does
not exist yet starts from the logged spend of its period (``logged_spend``): a budget set
mid-month counts the month so far, and a Redis that lost its data starts again from the log.

The statements are written out (a handful per step, with ``%s`` parameters, the same on SQLite and
PostgreSQL): the ORM's query building cost ~3 ms of CPU per check-and-take, these ~0.2 ms.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections, connection, transaction
from django.db.models import Sum

from gateway.access.limits import BUDGET, Adjustments, Counter, Outcome, Store, units
from gateway.conf import gateway_settings
from gateway.usage import daily

CLEAN_EVERY = 60.0
T = TypeVar("T")


def logged_spend(counter: Counter) -> int:
    """The logged spend of a budget counter's holder in its period, in 1e-8 USD: from the daily sums the
    log writer keeps with every row it writes (they outlive the raw rows the retention command
    prunes). A period starts at midnight in TIME_ZONE, the sums' day boundary."""
    from gateway.models import UsageDaily

    rows = UsageDaily.objects.filter(**{counter.limits.column: counter.limits.id})
    if counter.since is not None:
        rows = rows.filter(day__gte=daily.day_of(datetime.fromtimestamp(counter.since, UTC)))
    return units(rows.aggregate(spent=Sum("cost"))["spent"] or Decimal(0))


def _tables() -> tuple[str, str]:
    from gateway.models import LimitCounter, LimitSlot

    quote = connection.ops.quote_name
    return quote(LimitCounter._meta.db_table), quote(LimitSlot._meta.db_table)


def _marks(items: Sequence[Any]) -> str:
    return ", ".join(["%s"] * len(items))


class DatabaseStore(Store):
    """Counters in the gateway's database: exact across the processes that share it (see the module)."""

    def __init__(self) -> None:
        self._cleaned = 0.0

    async def take(self, counters: Sequence[Counter], holder: str, now: float) -> Outcome:
        # Bounded (TimeoutError: the policy's 503 limits_unavailable): a database that hangs must not
        # hold the request. The steps queue in sync_to_async's one thread, so the bound leaves room for
        # a queue under load: the pool's wait plus the request path's database timeout.
        return await asyncio.wait_for(sync_to_async(_released(self.take_sync))(counters, holder, now),
                                      gateway_settings.DB_POOL_TIMEOUT + gateway_settings.DB_TIMEOUT_SECONDS)

    def take_sync(self, counters: Sequence[Counter], holder: str, now: float) -> Outcome:
        _fresh_connection()
        counts, slots = _tables()
        keys = sorted({counter.key for counter in counters})
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        select = f'SELECT "key", value FROM {counts} WHERE "key" IN ({_marks(keys)}) ORDER BY "key"{lock}'
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(select, keys)
            rows = dict(cursor.fetchall())
            missing = [counter for counter in counters if counter.key not in rows]
            if missing:  # a new window: its row, then lock it like the others
                values = [(c.key, logged_spend(c) if c.kind == BUDGET else 0, None if c.slot else c.expires_at)
                          for c in missing]
                cursor.execute(f'INSERT INTO {counts} ("key", value, expires) VALUES '
                               + ", ".join(["(%s, %s, %s)"] * len(values)) + ' ON CONFLICT ("key") DO NOTHING',
                               [item for row in values for item in row])
                cursor.execute(select, keys)
                rows = dict(cursor.fetchall())
            slot_keys = [counter.key for counter in counters if counter.slot]
            if slot_keys:
                cursor.execute(f'SELECT "key", COUNT(*) FROM {slots} WHERE "key" IN ({_marks(slot_keys)}) '
                               'AND expires > %s GROUP BY "key"', [*slot_keys, now])
                rows.update(cursor.fetchall())
            values = [int(rows.get(counter.key, 0)) for counter in counters]
            refused = next((i for i, (counter, value) in enumerate(zip(counters, values, strict=True))
                            if value + counter.amount > counter.limit), None)
            if refused is None:
                takes = [(counter.key, counter.amount) for counter in counters if not counter.slot and counter.amount]
                if takes:
                    cases = " ".join(["WHEN %s THEN CAST(%s AS BIGINT)"] * len(takes))
                    cursor.execute(f'UPDATE {counts} SET value = value + CASE "key" {cases} ELSE 0 END '
                                   f'WHERE "key" IN ({_marks(takes)})',
                                   [*(item for take in takes for item in take), *(key for key, _ in takes)])
                if slot_keys:
                    cursor.execute(f'INSERT INTO {slots} ("key", holder, expires) VALUES '
                                   + ", ".join(["(%s, %s, %s)"] * len(slot_keys)),
                                   [item for c in counters if c.slot for item in (c.key, holder, c.expires_at)])
        if now - self._cleaned > CLEAN_EVERY:
            self._cleaned = now
            self.clean(now)
        return Outcome(refused is None, values, refused)

    def clean(self, now: float) -> None:
        """Delete windows and slots that have expired."""
        counts, slots = _tables()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {counts} WHERE expires < %s", [now])
            cursor.execute(f"DELETE FROM {slots} WHERE expires < %s", [now])

    async def settle_many(self, batch: Sequence[tuple[Adjustments, str]]) -> None:
        await sync_to_async(_released(self.settle_many_sync))(batch)

    def settle_many_sync(self, batch: Sequence[tuple[Adjustments, str]]) -> None:
        deltas: dict[str, int] = {}
        holders: list[str] = []
        for adjustments, holder in batch:
            for counter, delta in adjustments:
                if counter.slot:
                    holders.append(holder)
                elif delta:
                    deltas[counter.key] = deltas.get(counter.key, 0) + delta
        if not deltas and not holders:
            return
        _fresh_connection()
        counts, slots = _tables()
        with transaction.atomic(), connection.cursor() as cursor:
            if deltas:
                keys = sorted(deltas)
                if connection.features.has_select_for_update:  # lock in key order, as the take does: no deadlock
                    cursor.execute(f'SELECT "key" FROM {counts} WHERE "key" IN ({_marks(keys)}) ORDER BY "key" '
                                   "FOR UPDATE", keys)
                delta = "CASE \"key\" " + " ".join(["WHEN %s THEN CAST(%s AS BIGINT)"] * len(keys)) + " ELSE 0 END"
                params = [item for key in keys for item in (key, deltas[key])]
                cursor.execute(f"UPDATE {counts} SET value = CASE WHEN value + {delta} < 0 THEN 0 "
                               f'ELSE value + {delta} END WHERE "key" IN ({_marks(keys)})', [*params, *params, *keys])
            if holders:
                holders = sorted(set(holders))
                cursor.execute(f"DELETE FROM {slots} WHERE holder IN ({_marks(holders)})", holders)

    async def renew(self, slots: Sequence[tuple[str, str]], until: float) -> None:
        def renew() -> None:
            _fresh_connection()
            holders = sorted({holder for _, holder in slots})
            with connection.cursor() as cursor:
                cursor.execute(f"UPDATE {_tables()[1]} SET expires = %s WHERE holder IN ({_marks(holders)})",
                               [until, *holders])

        await sync_to_async(_released(renew))()

    async def peek(self, counters: Sequence[Counter], now: float) -> list[int]:
        def peek() -> list[int]:
            _fresh_connection()
            keys = [counter.key for counter in counters]
            with connection.cursor() as cursor:
                cursor.execute(f'SELECT "key", value FROM {_tables()[0]} WHERE "key" IN ({_marks(keys)})', keys)
                found = dict(cursor.fetchall())
            return [int(found.get(counter.key, 0)) for counter in counters]

        return await sync_to_async(_released(peek))()


def _released(step: Callable[..., T]) -> Callable[..., T]:
    """``step``, then its connection handed back (to the pool on PostgreSQL): the event loop's steps run
    in sync_to_async's one thread, which no request ends, so nothing else would give it back."""
    def run(*args: Any) -> T:
        try:
            return step(*args)
        finally:
            if not connection.in_atomic_block:  # (tests run inside a transaction)
                connection.close_if_unusable_or_obsolete()

    return run


_checked = threading.local()
CHECK_EVERY = 1.0


def _fresh_connection() -> None:
    """Drop this thread's connection if it broke or is too old, at most once a second: every check
    costs PostgreSQL a round trip (CONN_HEALTH_CHECKS), twice a request would be a lot."""
    now = time.monotonic()
    if connection.in_atomic_block or now - getattr(_checked, "at", 0.0) < CHECK_EVERY:
        return  # (tests run inside a transaction)
    _checked.at = now
    close_old_connections()
