"""Both limit stores keep the same contract: all or nothing, slots with leases, settlement, budgets seeded
from the request log, and exact counts under concurrency (threads, tasks, and separate processes)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection

from gateway.access import limits, stores
from gateway.access.database_store import DatabaseStore
from gateway.access.limits import Counter, Limits, Need, Store
from gateway.access.redis_store import RedisStore
from gateway.models import RequestLog
from tests.gateway.access.conftest import clean_redis, logged

NOW = 1_900_000_000.0  # a fixed instant: 2030-03-17 17:46:40 UTC
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(params=["database", "redis"])
def store(request: pytest.FixtureRequest, transactional_db: None) -> Iterator[Store]:
    if request.param == "database":
        yield DatabaseStore()
        return
    url = request.getfixturevalue("redis_url")
    clean_redis(url)
    yield RedisStore(url)
    clean_redis(url)


def run(store: Store, work) -> object:
    async def scenario() -> object:
        try:
            return await work()
        finally:
            if isinstance(store, RedisStore):
                await store.close()

    return asyncio.run(scenario())


def counter(kind: str = "rpm", limit: int = 2, amount: int = 1, key: str | None = None, **fields: object) -> Counter:
    holder = Limits("token", 1, "t")
    expires = fields.pop("expires_at", NOW + 120)
    return Counter(key or f"gw:lim:tok:1:{kind}:test", kind, limit, amount, holder, NOW + 60, expires, **fields)


def test_a_take_takes_every_counter_or_none(store: Store) -> None:
    a, b = counter(key="gw:lim:a", limit=2), counter(key="gw:lim:b", limit=1)

    async def work() -> None:
        assert (await store.take([a, b], "h1", NOW)).ok
        refused = await store.take([a, b], "h2", NOW)
        assert (refused.ok, refused.refused, refused.values) == (False, 1, [1, 1])
        assert await store.peek([a, b], NOW) == [1, 1]  # the refused take took nothing from a either
        assert (await store.take([a], "h3", NOW)).ok and await store.peek([a], NOW) == [2]

    run(store, work)


def test_slots_free_on_settlement_or_when_their_lease_ends(store: Store) -> None:
    def slot(expires: float) -> Counter:
        return counter("parallel", limit=2, key="gw:lim:tok:1:parallel", expires_at=expires)

    async def work() -> None:
        assert (await store.take([slot(NOW + 60)], "one", NOW)).ok
        assert (await store.take([slot(NOW + 5)], "two", NOW)).ok
        assert not (await store.take([slot(NOW + 60)], "three", NOW)).ok
        await store.settle([(slot(NOW + 60), 0)], "one")
        assert (await store.take([slot(NOW + 60)], "three", NOW)).ok
        # "two" was not renewed: 6 s later its lease is over and its slot free
        assert (await store.take([slot(NOW + 66)], "four", NOW + 6)).values == [1]
        await store.renew([(slot(0).key, "three"), (slot(0).key, "four")], NOW + 200)
        assert not (await store.take([slot(NOW + 160)], "five", NOW + 100)).ok  # renewed: still held

    run(store, work)


def test_settlement_corrects_counts_never_below_zero_and_never_revives_a_window(store: Store) -> None:
    tokens = counter("tpm", limit=1000, amount=300)
    gone = counter("tpm", limit=1000, amount=300, key="gw:lim:tok:1:tpm:gone")

    async def work() -> None:
        await store.take([tokens], "h", NOW)
        await store.settle([(tokens, -250)], "h")
        assert await store.peek([tokens], NOW) == [50]
        await store.settle([(tokens, -1000)], "h")
        assert await store.peek([tokens], NOW) == [0]
        await store.settle([(gone, 40)], "h")
        assert await store.peek([gone], NOW) == [0]
        assert (await store.take([gone], "h", NOW)).values == [0]

    run(store, work)


def log_spend(token_id: int, cost: str, created_at: float) -> None:
    logged(cost, datetime.fromtimestamp(created_at, UTC), token_id=token_id)


@pytest.mark.parametrize("pruned", [False, True], ids=["raw rows kept", "raw rows pruned"])
def test_a_new_budget_window_starts_from_the_logged_spend(store: Store, pruned: bool) -> None:
    holder = Limits("token", 41, "t", budget=Decimal(1), budget_period="daily")
    label, start, end = limits.windows.period("daily", NOW)
    log_spend(41, "0.5", start + 10)
    log_spend(41, "7", start - 10)  # the day before: not this period's
    log_spend(42, "7", start + 10)  # another token
    if pruned:  # the retention command deletes raw rows; the daily sums stay, and so does the spend
        RequestLog.objects.all().delete()

    def budget(amount: int) -> Counter:
        return limits.counters((holder,), Need(cost=amount), NOW, lease=60)[0]

    async def work() -> None:
        first = await store.take([budget(40_000_000)], "h", NOW)
        assert first.ok and first.values == [50_000_000]
        assert not (await store.take([budget(20_000_000)], "h", NOW)).ok
        assert await store.peek([budget(0)], NOW) == [90_000_000]

    run(store, work)


def test_thirty_concurrent_takes_of_a_limit_of_ten_get_exactly_ten(store: Store) -> None:
    rpm = counter(limit=10, key="gw:lim:tok:1:rpm:burst")

    async def work() -> list[bool]:
        outcomes = await asyncio.gather(*(store.take([rpm], f"h{i}", NOW) for i in range(30)))
        return [outcome.ok for outcome in outcomes]

    assert sum(run(store, work)) == 10


@pytest.mark.django_db(transaction=True)
def test_the_database_store_is_exact_across_threads() -> None:
    store, rpm, wins = DatabaseStore(), counter(limit=10, key="gw:lim:tok:1:rpm:threads"), []

    def worker() -> None:
        for _ in range(5):
            wins.append(store.take_sync([rpm], "h", NOW).ok)
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(wins) == 10 and len(wins) == 30


def database_url() -> str:
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}" if settings["NAME"].startswith("/") else f"sqlite:////{settings['NAME']}"
    return (f"postgres://{settings['USER']}:{settings['PASSWORD']}@{settings['HOST'] or '127.0.0.1'}:"
            f"{settings['PORT'] or 5432}/{settings['NAME']}")


WORKER = textwrap.dedent("""
    import json, sys
    import django
    from proxy_site.settings import use_these_settings
    use_these_settings(); django.setup()
    from gateway.access.database_store import DatabaseStore
    from gateway.access.limits import Counter, Limits
    key, now = sys.argv[1], float(sys.argv[2])
    rpm = Counter(key, "rpm", 10, 1, Limits("token", 1, "t"), now + 60, now + 120)
    store = DatabaseStore()
    print(json.dumps([store.take_sync([rpm], "h", now).ok for _ in range(10)]))
""")


@pytest.mark.django_db(transaction=True)
def test_the_database_store_is_exact_across_processes() -> None:
    """What the README's start command runs: several worker processes on one database."""
    env = {"DATABASE_URL": database_url(), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
           "DJANGO_SECRET_KEY": "test"}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, "gw:lim:tok:1:rpm:processes", str(NOW)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT) for _ in range(3)]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err.decode()
        results += json.loads(out)
    assert sum(results) == 10 and len(results) == 30


def test_held_slots_are_renewed_while_their_requests_run(store: Store, settings) -> None:
    settings.GATEWAY = {"LIMITS_PARALLEL_LEASE_SECONDS": 0.3}
    started = time.time()
    slot = counter("parallel", limit=1, key="gw:lim:tok:1:parallel:renewed", expires_at=started + 0.3)

    async def work() -> None:
        assert (await store.take([slot], "running", started)).ok
        stores.leases.hold(store, "running", [slot.key], time.time)
        await asyncio.sleep(0.6)  # two leases later: renewed, so still held
        assert not (await store.take([slot], "other", time.time())).ok
        stores.leases.release("running")  # the worker stops renewing (it crashed, say)
        await asyncio.sleep(0.5)
        assert (await store.take([slot], "other", time.time())).ok

    run(store, work)


def test_redis_takes_of_a_request_that_went_away_are_given_back(redis_url: str, transactional_db: None) -> None:
    clean_redis(redis_url)
    store, rpm = RedisStore(redis_url), counter(limit=10, key="gw:lim:tok:1:rpm:cancelled")
    slot = counter("parallel", limit=1, key="gw:lim:tok:1:parallel:cancelled")

    async def work() -> None:
        waiting = asyncio.ensure_future(store.take([rpm, slot], "gone", NOW))
        await asyncio.sleep(0)  # queued for the next call, which is then sent...
        waiting.cancel()  # ...while its request is cancelled
        await asyncio.sleep(0.2)
        assert await store.peek([rpm], NOW) == [0]
        assert (await store.take([slot], "next", NOW)).ok  # the slot was freed too
        await store.close()

    asyncio.run(work())
    clean_redis(redis_url)
