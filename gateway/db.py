"""Database connections for code that queries outside a Django request.

Django closes (with the pool: returns) a request's connection when the request ends. Code that
queries from a thread no request ends — the hot path's token and registry loads, which run in
a worker thread — wraps its queries in ``borrowed_connection()`` instead, so that the connection
goes back as soon as the query is done and a worker never holds more than its pool.

``query()`` runs such a request-path load with a short timeout; its callers serve what they already
know (``GATEWAY_STALE_CACHE_SECONDS``) when the database is away.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import DatabaseError, close_old_connections, connection

from gateway.conf import gateway_settings

logger = logging.getLogger(__name__)
T = TypeVar("T")


@contextmanager
def borrowed_connection() -> Iterator[None]:
    """Drop a stale or broken connection before the queries; hand the connection back after them
    (to the pool on Postgres; a persistent SQLite connection stays open, per its CONN_MAX_AGE)."""
    if connection.in_atomic_block:  # (tests run inside a transaction: it is not ours to end)
        yield
        return
    close_old_connections()
    try:
        yield
    finally:
        if not connection.in_atomic_block:
            close_old_connections()


class DatabaseUnavailable(Exception):
    """The database did not answer a request-path query (down, unreachable, or not within the timeout)."""


# When a request-path query last failed (monotonic). For a second after, requests do not try again:
# during an outage each worker sends the database at most about one attempt a second, not one per
# request (each would hold a thread until its own timeout).
_failed_at = float("-inf")
RETRY_AFTER_FAILURE_SECONDS = 1.0


def _failed(exc: BaseException) -> DatabaseUnavailable:
    global _failed_at
    first = time.monotonic() - _failed_at > 60
    _failed_at = time.monotonic()
    (logger.error if first else logger.info)("database unavailable on the request path (%s: %s); serving what "
                                             "this worker already knows", type(exc).__name__, exc)
    return DatabaseUnavailable(f"{type(exc).__name__}: {exc}")


def _recently_failed() -> bool:
    return time.monotonic() - _failed_at < RETRY_AFTER_FAILURE_SECONDS


async def query(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` (database queries) in a worker thread, for at most ``GATEWAY_DB_TIMEOUT_SECONDS``.

    Raises ``DatabaseUnavailable`` when the database fails (any ``DatabaseError``) or has not answered
    in time; a thread stuck on a database that hangs is left to its own timeouts (connect_timeout,
    the pool's wait, statement_timeout) while the request moves on. Not sync_to_async's one shared
    thread: a query that hangs there would hold every later one up behind it.
    """
    if _recently_failed():
        raise DatabaseUnavailable("the database failed a moment ago")

    def borrowing() -> T:
        with borrowed_connection():  # every query of it, back to the pool when it is done
            return function(*args)

    try:
        return await asyncio.wait_for(sync_to_async(borrowing, thread_sensitive=False)(),
                                      gateway_settings.DB_TIMEOUT_SECONDS)
    except (TimeoutError, DatabaseError) as exc:
        raise _failed(exc) from exc


def query_sync(function: Callable[..., T], *args: Any) -> T:
    """``query`` for code already in a thread (Django/DRF views): the same errors, inline (so within
    the request's transaction, as tests have it), bounded by the connection's own timeouts."""
    if _recently_failed():
        raise DatabaseUnavailable("the database failed a moment ago")
    try:
        return function(*args)
    except DatabaseError as exc:
        raise _failed(exc) from exc


def reset_failures() -> None:  # (tests)
    global _failed_at
    _failed_at = float("-inf")
