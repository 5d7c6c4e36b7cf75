"""Cache invalidation across workers: a change published through Redis clears other workers' caches."""

from __future__ import annotations

import asyncio
import threading

from django.conf import settings

from gateway import invalidation


def test_a_change_published_by_one_process_clears_the_caches_of_a_watching_worker(redis_url: str) -> None:
    cleared = asyncio.Event()

    async def scenario() -> None:
        invalidation.register(cleared.set)
        try:
            watcher = asyncio.create_task(invalidation.watch(interval=0.05))
            await asyncio.sleep(0.2)  # the watcher has read the current version
            cleared.clear()
            import redis

            redis.Redis.from_url(settings.REDIS_URL).incr(invalidation.VERSION_KEY)  # what another process does
            await asyncio.wait_for(cleared.wait(), timeout=2)
            watcher.cancel()
        finally:
            invalidation._clearers.remove(cleared.set)

    asyncio.run(scenario())


def test_a_change_made_here_clears_the_caches_once_not_again_when_the_watcher_sees_it(redis_url: str) -> None:
    clears: list[str] = []  # the thread of each clear (a live server's own watcher may clear too)

    async def scenario() -> None:
        invalidation.register(lambda: clears.append(threading.current_thread().name))
        try:
            watcher = asyncio.create_task(invalidation.watch(interval=0.05))
            await asyncio.sleep(0.2)  # the watcher has read the current version
            invalidation.changed()  # an admin save in this process
            await asyncio.sleep(0.3)  # several polls
            watcher.cancel()
        finally:
            invalidation._clearers.pop()

    asyncio.run(scenario())
    here = threading.current_thread().name
    assert [name for name in clears if name == here] == [here]
