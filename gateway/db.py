"""Database connections for code that queries outside a Django request.

Django closes (with the pool: returns) a request's connection when the request ends. Code that
queries from a thread no request ends — the hot path's token and registry loads, which run in
``sync_to_async``'s shared thread — wraps its queries in ``borrowed_connection()`` instead, so that
the connection goes back as soon as the query is done and a worker never holds more than its pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import close_old_connections, connection


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
