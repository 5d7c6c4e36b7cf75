"""Keeps every worker's in-process caches (tokens, registry) honest when an admin changes data.

Each cache drops an entry after ``GATEWAY_CACHE_SECONDS``. A change saved through the ORM
also clears the caches of the process that made it at once, and, when ``REDIS_URL`` is set,
bumps a shared version that every worker polls once a second, so other workers and instances
follow within a second.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from django.conf import settings

logger = logging.getLogger(__name__)

VERSION_KEY = "gateway:config-version"
_clearers: list[Callable[[], None]] = []
# Versions this process published: its caches were cleared then already, so its watcher skips them.
_published: set[int] = set()


def register(clear: Callable[[], None]) -> None:
    _clearers.append(clear)


def clear_local() -> None:
    for clear in _clearers:
        clear()


def changed() -> None:
    """Data that caches hold has changed: clear here, tell the other workers."""
    clear_local()
    if not settings.REDIS_URL:
        return
    try:
        import redis

        if len(_published) > 10_000:
            _published.clear()
        _published.add(redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2).incr(VERSION_KEY))
    except Exception:  # a cache notice must never break an admin save; TTLs still bound staleness
        logger.warning("could not publish the configuration change to Redis", exc_info=True)


async def watch(interval: float = 1.0) -> None:
    """Poll the shared version (Redis only) and clear local caches when it moves."""
    if not settings.REDIS_URL:
        return
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
    unread = object()
    seen: object = unread
    failing = False
    try:
        while True:
            try:
                version = await client.get(VERSION_KEY)
                if seen is not unread and version != seen and not _only_own_change(seen, version):
                    clear_local()
                seen = version
                if failing:
                    logger.warning("the configuration version is read from Redis again")
                failing = False
            except Exception as exc:  # said once per outage, not every second (the TTLs still bound staleness)
                if not failing:
                    logger.warning("could not read the configuration version from Redis (%s: %s); retrying every "
                                   "%g s", type(exc).__name__, exc, interval)
                failing = True
            await asyncio.sleep(interval)
    finally:
        await client.aclose()


def _only_own_change(before: object, after: object) -> bool:
    """Every version between the two was published by this process: nothing new to clear."""
    try:
        start, end = int(before), int(after)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False
    return start < end and all(version in _published for version in range(start + 1, end + 1))
