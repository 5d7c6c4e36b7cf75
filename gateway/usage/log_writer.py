"""Request logging off the response path.

The hot path appends a row to an in-memory queue (no I/O); one writer thread per process
bulk-inserts queued rows every ``LOG_FLUSH_SECONDS`` or ``LOG_BATCH_SIZE`` rows, and stamps the
tokens' ``last_used_at`` in the same pass. A failed write keeps its rows and is retried; a
graceful shutdown (ASGI lifespan, or interpreter exit) flushes what is left.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from typing import Any

from django.db import close_old_connections, connection, transaction

from gateway.conf import gateway_settings

logger = logging.getLogger(__name__)

LOCK_TIMEOUT_SECONDS = 5
MAX_QUEUED = 200_000  # beyond this (database down for long) the oldest rows are dropped, loudly


class RequestLogWriter:
    def __init__(self) -> None:
        self._queue: deque[dict[str, Any]] = deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()  # one writer at a time (the thread, or an explicit flush)
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.dropped = 0

    def enqueue(self, row: dict[str, Any]) -> None:
        if len(self._queue) >= MAX_QUEUED:
            self._queue.popleft()
            self.dropped += 1
            if self.dropped % 1000 == 1:
                logger.error("request log queue full: %d rows dropped so far", self.dropped)
        self._queue.append(row)
        if self._thread is None:
            self.start()
        elif len(self._queue) >= gateway_settings.LOG_BATCH_SIZE:
            self._wake.set()

    def start(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._stopping = False
                self._thread = threading.Thread(target=self._run, name="request-log-writer", daemon=True)
                self._thread.start()

    def pending(self) -> int:
        return len(self._queue)

    def _run(self) -> None:
        interval = gateway_settings.LOG_FLUSH_SECONDS
        try:
            while not self._stopping:
                self._wake.wait(interval)
                self._wake.clear()
                try:
                    self.flush()
                except Exception:
                    logger.exception("request log write failed; %d rows kept for retry", len(self._queue))
                    time.sleep(min(interval * 5, 10))
        finally:
            connection.close()  # this thread's own connection: nothing else would close it

    def flush(self) -> int:
        """Write everything queued now; returns how many rows were written."""
        written = 0
        with self._lock:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), gateway_settings.LOG_BATCH_SIZE))]
                try:
                    _write(batch)
                except Exception:
                    self._queue.extendleft(reversed(batch))
                    close_old_connections()
                    raise
                written += len(batch)
        return written

    def stop(self) -> None:
        """Flush and stop the thread (graceful shutdown)."""
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        self._thread = None
        try:
            self.flush()
        except Exception:
            logger.exception("request log: %d rows could not be written at shutdown", len(self._queue))
        finally:
            connection.close()


def _insert_statement() -> tuple[str, list[str]]:
    from gateway.models import RequestLog

    fields = [f for f in RequestLog._meta.concrete_fields if not f.primary_key]
    qn = connection.ops.quote_name
    columns = ", ".join(qn(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    return f"INSERT INTO {qn(RequestLog._meta.db_table)} ({columns}) VALUES ({placeholders})", [f.attname for f in fields]


def _write(batch: list[dict[str, Any]]) -> None:
    """One executemany per batch: bulk_create spent ~80 µs of Python per row, this a few."""
    from gateway.models import ApiToken, ProviderAccount

    # The writer keeps its connection between batches (reopening cost ~2 ms with the GIL held);
    # after a failed batch, flush() closes it so the retry starts on a fresh one.
    sql, names = _insert_statement()
    ops = connection.ops
    params = []
    for row in batch:
        values = {"request_body": "", "response_body": "", **row}
        values["created_at"] = ops.adapt_datetimefield_value(values["created_at"])
        values["cost"] = ops.adapt_decimalfield_value(values["cost"], 14, 8)
        params.append([values[name] for name in names])
    last_used: dict[int, Any] = {}
    successes: dict[str, Any] = {}
    failures: dict[str, tuple[Any, str]] = {}
    for row in batch:  # rows are in time order
        if row.get("token_id"):
            last_used[row["token_id"]] = row["created_at"]
        account = row.get("provider_account")
        if account and row["status_code"] < 400:
            successes[account] = row["created_at"]
        elif account and row["status_code"] >= 500:
            failures[account] = (row["created_at"], row.get("error_message", "")[:500])
    with transaction.atomic():
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # A token or provider row held by someone else's open transaction must not stall the
                # log: give up after a while, keep the rows, and retry (SQLite has its busy timeout).
                cursor.execute(f"SET LOCAL lock_timeout = {int(LOCK_TIMEOUT_SECONDS * 1000)}")  # ms
            cursor.executemany(sql, params)
        # One UPDATE per batch: the batch's latest time is close enough for "last used".
        if last_used:
            ApiToken.objects.filter(id__in=list(last_used)).update(last_used_at=max(last_used.values()))
        for name, when in successes.items():
            ProviderAccount.objects.filter(name=name).update(last_success_at=when)
        for name, (when, message) in failures.items():
            ProviderAccount.objects.filter(name=name).update(last_error_at=when, last_error=message)


writer = RequestLogWriter()
atexit.register(writer.stop)
