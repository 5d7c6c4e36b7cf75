"""Request logging off the response path.

The hot path appends a row to an in-memory queue (no I/O); one writer thread per process
bulk-inserts queued rows every ``LOG_FLUSH_SECONDS`` or ``LOG_BATCH_SIZE`` rows, and stamps the
tokens' ``last_used_at`` in the same pass. A graceful shutdown (ASGI lifespan, or interpreter
exit) flushes what is left.

No row can stop the log. Rows are cleaned where they are built (gateway/usage/clean.py); should
the database still refuse a batch's data, the batch is halved until the refused rows stand alone,
each is retried once reduced to ASCII, and one refused even then is dropped, counted and logged
with its request id, while the rest are written. A failure of the database itself (down,
unreachable, hanging, a lock wait given up) keeps the rows in memory for retry, up to
``GATEWAY_LOG_MAX_QUEUED_ROWS`` (past it the oldest are dropped, counted and logged loudly). Rows
still unwritten when the process stops go to the spool file (gateway/usage/spool.py), which the next
start hands back to the writer.

Failed authentications are bounded too (``AUTH_FAILURE_LOG_PER_MINUTE``): past that many in a
minute, one summary row per minute counts the rest, so a flood of random tokens cannot fill the log.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from typing import Any, Protocol

from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    transaction,
)
from django.utils import timezone

from gateway.conf import gateway_settings
from gateway.usage import daily, spool
from gateway.usage.clean import scrub_row

logger = logging.getLogger(__name__)

LOCK_TIMEOUT_SECONDS = 5
# How long stop() waits for a write under way (the database may hang) before the rows go to the spool.
STOP_WAIT_SECONDS = 5.0
AUTH_SUMMARY_ERROR_TYPE = "auth_failures_suppressed"

_clock = time.time  # wall clock, whose minutes bound the auth-failure windows (tests replace it)


class Loggable(Protocol):
    """What the writer keeps of the last failed authentication it did not log: its row becomes the summary."""

    created_at: Any

    def row(self) -> dict[str, Any]: ...


def refused(exc: BaseException) -> bool:
    """Did the database (or its driver) refuse the rows' data, rather than fail itself?

    DataError and IntegrityError come from values (NUL, too long, out of range, a constraint);
    an error that is not the database's comes from adapting a value (a lone surrogate, an int
    too large for SQLite). Any other DatabaseError (operational, interface, programming,
    internal) is the database's: the rows are fine and kept for retry.
    """
    if isinstance(exc, (DataError, IntegrityError)):
        return True
    return not isinstance(exc, DatabaseError)


class RequestLogWriter:
    def __init__(self) -> None:
        self._queue: deque[dict[str, Any]] = deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()  # one writer at a time (the thread, or an explicit flush)
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._inflight: list[dict[str, Any]] = []  # the batch being written (spooled if the write never ends)
        self.spooled = 0
        # Counters for this process (an admin page may show them): rows lost because the queue was
        # full, rows the database refused even scrubbed, failed authentications counted in a
        # summary row instead of logged one by one.
        self.dropped = 0
        self.refused = 0
        self.suppressed = 0
        # The current minute's failed authentications.
        self._auth_lock = threading.Lock()
        self._auth_minute = 0
        self._auth_logged = 0
        self._auth_suppressed = 0
        self._auth_first: Any = None  # created_at of the first one suppressed this minute
        self._auth_last: Loggable | None = None  # the last one suppressed (its row becomes the summary)

    @property
    def dropped_rows(self) -> int:
        """Rows that never reached the log: queue full, or refused by the database."""
        return self.dropped + self.refused

    def counters(self) -> dict[str, int]:
        return {"pending": len(self._queue), "dropped": self.dropped, "refused": self.refused,
                "dropped_rows": self.dropped_rows, "suppressed": self.suppressed, "spooled": self.spooled}

    def enqueue(self, row: dict[str, Any]) -> None:
        self._append(row)
        if self._thread is None:
            self.start()
        elif len(self._queue) >= gateway_settings.LOG_BATCH_SIZE:
            self._wake.set()

    def _append(self, row: dict[str, Any]) -> None:
        if len(self._queue) >= gateway_settings.LOG_MAX_QUEUED_ROWS:
            self._queue.popleft()
            self.dropped += 1
            if self.dropped % 1000 == 1:
                logger.error("REQUEST LOG ROWS LOST: the queue is full (GATEWAY_LOG_MAX_QUEUED_ROWS=%d, the database "
                             "has not taken rows for a while); %d rows dropped so far",
                             gateway_settings.LOG_MAX_QUEUED_ROWS, self.dropped)
        self._queue.append(row)

    def admit_auth_failure(self, call: Loggable) -> bool:
        """Should this failed authentication (a 401 from the token check) be logged on its own row?

        The first ``AUTH_FAILURE_LOG_PER_MINUTE`` of each minute are; the others are counted, and
        the minute's count is written as one summary row when it ends (or at shutdown).
        """
        limit = gateway_settings.AUTH_FAILURE_LOG_PER_MINUTE
        with self._auth_lock:
            minute = int(_clock() // 60)
            if minute != self._auth_minute:
                self._close_auth_minute()
                self._auth_minute = minute
            if self._auth_logged < limit:
                self._auth_logged += 1
                return True
            self._auth_suppressed += 1
            self.suppressed += 1
            if self._auth_first is None:
                self._auth_first = call.created_at
            self._auth_last = call
            return False

    def _close_auth_minute(self) -> None:
        """Queue the summary of the failed authentications not logged (if any); start a new count.
        Called with ``_auth_lock`` held."""
        last, count, first = self._auth_last, self._auth_suppressed, self._auth_first
        self._auth_logged = self._auth_suppressed = 0
        self._auth_first = self._auth_last = None
        if last is None or not count:
            return
        since = timezone.localtime(first) if timezone.is_aware(first) else first
        row = last.row()
        row.update(
            status_code=401, error_type=AUTH_SUMMARY_ERROR_TYPE, latency_ms=0, ttft_ms=None,
            error_message=f"{count} failed authentication attempts were not logged individually "
                          f"since {since:%H:%M:%S %Z}".rstrip(),
        )
        self._append(row)  # written by the next flush (this may run in the writer thread, or at shutdown)
        logger.warning("request log: %d failed authentications in a minute were summarised in one row", count)

    def close_auth_window(self, force: bool = False) -> None:
        """Queue the auth-failure summary if its minute has ended (or now, with ``force``)."""
        with self._auth_lock:
            minute = int(_clock() // 60)
            if force or minute != self._auth_minute:
                self._close_auth_minute()
                self._auth_minute = minute

    def replay_spool(self) -> int:
        """Queue the rows a previous run left in the spool file (written by the next flush)."""
        try:
            rows = spool.claim()
        except OSError:
            logger.exception("request log: could not read the spool file %s", spool.path())
            return 0
        for row in rows:
            self._append(row)
        if rows:
            logger.warning("request log: %d rows from the spool file %s queued for writing", len(rows), spool.path())
            self._wake.set()
        return len(rows)

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
                    self.close_auth_window()
                    self.flush()  # (the thread keeps its connection, pooled or not: reconnecting costs a round trip)
                except (OperationalError, InterfaceError) as exc:  # the database away: no traceback each retry
                    logger.warning("request log: the database is unavailable (%s: %s); %d rows kept in memory "
                                   "for retry", type(exc).__name__, str(exc).strip()[:300], len(self._queue))
                    time.sleep(min(interval * 5, 10))
                except Exception:
                    logger.exception("request log write failed; %d rows kept for retry", len(self._queue))
                    time.sleep(min(interval * 5, 10))
        finally:
            connection.close()  # this thread's own connection: nothing else would close it

    def flush(self, final: bool = False) -> int:
        """Write everything queued now; returns how many rows were written. ``final`` (as at
        shutdown) also writes the current minute's auth-failure summary and starts a new count."""
        if final:
            self.close_auth_window(force=True)
        written = 0
        with self._lock:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), gateway_settings.LOG_BATCH_SIZE))]
                self._inflight = batch
                try:
                    written += self._write_around_refusals(batch)
                except Exception:
                    close_old_connections()
                    raise
                finally:
                    self._inflight = []
        return written

    def _write_around_refusals(self, batch: list[dict[str, Any]]) -> int:
        """Write ``batch``; if the database refuses its data, halve it until the refused rows stand
        alone, and give each a last chance scrubbed. A failure of the database itself puts the rows
        not yet written back at the head of the queue and is raised."""
        written = 0
        chunks = deque([batch])
        while chunks:
            chunk = chunks.popleft()
            try:
                _write(chunk)
            except Exception as exc:
                if not refused(exc):
                    self._queue.extendleft(reversed([row for rows in (chunk, *chunks) for row in rows]))
                    raise
                if chunk is batch:
                    logger.warning("request log: the database refused a batch of %d rows (%s: %s); "
                                   "writing it around the refused rows", len(batch), type(exc).__name__, exc)
                if len(chunk) > 1:
                    half = len(chunk) // 2
                    chunks.extendleft([chunk[half:], chunk[:half]])
                    continue
                try:
                    written += self._last_chance(chunk[0], exc)
                except Exception:
                    self._queue.extendleft(reversed([row for rows in (chunk, *chunks) for row in rows]))
                    raise
                continue
            written += len(chunk)
        return written

    def _last_chance(self, row: dict[str, Any], exc: BaseException) -> int:
        """One row the database refused: retried once scrubbed; dropped (counted, logged) if refused again."""
        try:
            _write([scrub_row(row)])
        except Exception as again:
            if not refused(again):
                raise
            self.refused += 1
            logger.error("request log: dropped the row of request %r, refused by the database (%s: %s; "
                         "scrubbed: %s: %s); %d dropped so far", str(row.get("request_id"))[:64],
                         type(exc).__name__, exc, type(again).__name__, again, self.refused)
            return 0
        logger.warning("request log: the row of request %r was written scrubbed to ASCII (refused as built: %s: %s)",
                       str(row.get("request_id"))[:64], type(exc).__name__, exc)
        return 1

    def stop(self) -> None:
        """Flush (with the auth-failure summary) and stop the thread (graceful shutdown). What the
        database does not take (down, or a write still hanging after ``STOP_WAIT_SECONDS``) goes to
        the spool file."""
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=STOP_WAIT_SECONDS)
        self._thread = None
        try:
            if thread is not None and thread.is_alive():  # stuck in a write: the database hangs
                self.close_auth_window(force=True)
                raise DatabaseError("the request log's write did not finish")
            self.flush(final=True)
        except Exception as exc:
            self.spool_rest(exc)
        finally:
            if thread is None or not thread.is_alive():
                connection.close()

    def spool_rest(self, exc: BaseException) -> None:
        """Save every row not written (queued, or in a write that never finished) to the spool file."""
        rows = [*self._inflight, *self._queue]
        self._queue.clear()
        self._inflight = []
        try:
            self.spooled += spool.save(rows)
        except Exception:
            self.dropped += len(rows)
            logger.exception("REQUEST LOG ROWS LOST: %d rows could not be written at shutdown (%s) nor saved to "
                             "the spool file %s", len(rows), exc, spool.path())
            return
        if rows:
            logger.warning("request log: the database did not take %d rows at shutdown (%s: %s); saved to %s, "
                           "written at the next start", len(rows), type(exc).__name__, exc, spool.path())


def _insert_statement() -> tuple[str, list[str]]:
    """The statement that adds a batch's rows (on PostgreSQL a COPY) and the row keys it takes, in order."""
    from gateway.models import RequestLog

    fields = [f for f in RequestLog._meta.concrete_fields if not f.primary_key]
    qn = connection.ops.quote_name
    table, columns = qn(RequestLog._meta.db_table), ", ".join(qn(f.column) for f in fields)
    if connection.vendor == "postgresql":
        return f"COPY {table} ({columns}) FROM STDIN", [f.attname for f in fields]
    placeholders = ", ".join(["%s"] * len(fields))
    return f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", [f.attname for f in fields]


def _insert(cursor: Any, sql: str, params: list[list[Any]]) -> None:
    """Add the rows. PostgreSQL's COPY costs ~5 us of Python and ~15 us of the server per row where an
    INSERT per row (executemany) cost ~17 and ~45: under load the log was a third of the machine's CPU.
    Its errors are Django's, as executemany's are (a refused value is a DataError)."""
    if not sql.startswith("COPY "):
        cursor.executemany(sql, params)
        return
    with connection.wrap_database_errors, cursor.cursor.copy(sql) as copy:
        for values in params:
            copy.write_row(values)


def _write(batch: list[dict[str, Any]]) -> None:
    """One statement per batch (bulk_create spent ~80 µs of Python per row, this a few). The batch's
    daily sums are added to UsageDaily in the same transaction, so a batch (or a chunk of one, when
    refused rows are isolated) is written with its aggregates or not at all."""
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
        for name, message in row.get("account_failures", ()):  # attempts that failed before the last one
            failures[name] = (row["created_at"], message[:500])
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
            _insert(cursor, sql, params)
            daily.add(cursor, daily.aggregate(batch))
        # One UPDATE per batch: the batch's latest time is close enough for "last used".
        if last_used:
            ApiToken.objects.filter(id__in=list(last_used)).update(last_used_at=max(last_used.values()))
        for name, when in successes.items():
            ProviderAccount.objects.filter(name=name).update(last_success_at=when)
        for name, (when, message) in failures.items():
            ProviderAccount.objects.filter(name=name).update(last_error_at=when, last_error=message)


writer = RequestLogWriter()
atexit.register(writer.stop)
