"""The database limit store: exact across every process that shares the database.

``LimitCounter`` rows hold one window each (requests, tokens or 1e-8 USD) and serve as the lock of a
parallel limit, whose requests in flight are ``LimitSlot`` rows. Each step is one transaction in a
worker thread, off the event loop: on SQLite every transaction is ``BEGIN IMMEDIATE`` (settings),
so the steps of all the machine's workers run one after another; on PostgreSQL the counter rows are
locked (``select_for_update``, in key order) for the transaction. A budget counter that does not
exist yet starts from the request log's spend for its period (``logged_spend``): a budget set
mid-month counts the month so far, and a Redis that lost its data starts again from the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Sum
from django.db.models.functions import Greatest

from gateway.access.limits import BUDGET, Counter, Outcome, Store, units

CLEAN_EVERY = 60.0


def logged_spend(counter: Counter) -> int:
    """The spend the request log holds for a budget counter's holder and period, in 1e-8 USD."""
    from gateway.models import RequestLog

    rows = RequestLog.objects.filter(**{f"{counter.limits.owner}_id": counter.limits.id})
    if counter.since is not None:
        rows = rows.filter(created_at__gte=datetime.fromtimestamp(counter.since, UTC))
    return units(rows.aggregate(spent=Sum("cost"))["spent"] or Decimal(0))


class DatabaseStore(Store):
    """Counters in the gateway's database: exact across the processes that share it (see the module)."""

    def __init__(self) -> None:
        self._cleaned = 0.0

    async def take(self, counters: Sequence[Counter], holder: str, now: float) -> Outcome:
        return await sync_to_async(self.take_sync)(counters, holder, now)

    def take_sync(self, counters: Sequence[Counter], holder: str, now: float) -> Outcome:
        from gateway.models import LimitCounter, LimitSlot

        _fresh_connection()
        keys = sorted({counter.key for counter in counters})
        with transaction.atomic():
            rows = _locked(keys)
            missing = [counter for counter in counters if counter.key not in rows]
            if missing:
                LimitCounter.objects.bulk_create([
                    LimitCounter(key=counter.key, value=logged_spend(counter) if counter.kind == BUDGET else 0,
                                 expires=counter.expires_at) for counter in missing], ignore_conflicts=True)
                rows = _locked(keys)
            values = []
            for counter in counters:
                if counter.slot:
                    LimitSlot.objects.filter(key=counter.key, expires__lte=now).delete()
                    values.append(LimitSlot.objects.filter(key=counter.key).count())
                else:
                    values.append(rows[counter.key].value)
            refused = next((i for i, (counter, value) in enumerate(zip(counters, values, strict=True))
                            if value + counter.amount > counter.limit), None)
            if refused is None:
                changed = []
                for counter in counters:
                    row = rows[counter.key]
                    if not counter.slot:
                        row.value += counter.amount
                    if counter.expires_at is not None:
                        row.expires = max(row.expires or 0.0, counter.expires_at)
                    changed.append(row)
                LimitCounter.objects.bulk_update(changed, ["value", "expires"])
                LimitSlot.objects.bulk_create([LimitSlot(key=counter.key, holder=holder, expires=counter.expires_at)
                                               for counter in counters if counter.slot])
        if now - self._cleaned > CLEAN_EVERY:
            self._cleaned = now
            self.clean(now)
        return Outcome(refused is None, values, refused)

    def clean(self, now: float) -> None:
        """Delete windows and slots that have expired."""
        from gateway.models import LimitCounter, LimitSlot

        with transaction.atomic():
            LimitCounter.objects.filter(expires__lt=now).delete()
            LimitSlot.objects.filter(expires__lt=now).delete()

    async def settle(self, adjustments: Sequence[tuple[Counter, int]], holder: str) -> None:
        await sync_to_async(self.settle_sync)(adjustments, holder)

    def settle_sync(self, adjustments: Sequence[tuple[Counter, int]], holder: str) -> None:
        from gateway.models import LimitCounter, LimitSlot

        _fresh_connection()
        with transaction.atomic():
            for counter, delta in sorted(adjustments, key=lambda pair: pair[0].key):  # the take's lock order
                if delta and not counter.slot:
                    LimitCounter.objects.filter(key=counter.key).update(value=Greatest(F("value") + delta, 0))
            if any(counter.slot for counter, _ in adjustments):
                LimitSlot.objects.filter(holder=holder).delete()

    async def renew(self, slots: Sequence[tuple[str, str]], until: float) -> None:
        from gateway.models import LimitSlot

        def renew() -> None:
            _fresh_connection()
            LimitSlot.objects.filter(holder__in={holder for _, holder in slots}).update(expires=until)

        await sync_to_async(renew)()

    async def peek(self, counters: Sequence[Counter], now: float) -> list[int]:
        from gateway.models import LimitCounter

        def peek() -> list[int]:
            _fresh_connection()
            found = dict(LimitCounter.objects.filter(key__in=[c.key for c in counters]).values_list("key", "value"))
            return [found.get(counter.key, 0) for counter in counters]

        return await sync_to_async(peek)()


def _fresh_connection() -> None:
    if not connection.in_atomic_block:  # (tests run inside a transaction)
        close_old_connections()


def _locked(keys: list[str]) -> dict[str, object]:
    from gateway.models import LimitCounter

    rows = LimitCounter.objects.select_for_update().filter(key__in=keys).order_by("key")
    return {row.key: row for row in rows}
