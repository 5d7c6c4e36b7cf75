"""What happens to a finished /v1 call besides its log row: the metrics and its log line, off the event loop.

``Call.log()`` appends an ``Observation`` to this process's queue (a deque append) when the metrics
(``GATEWAY_METRICS``) or the per-request log lines (``GATEWAY_LOG_REQUESTS``, the ``gateway.requests``
logger) are on, and nothing at all otherwise. A thread of its own (not the log writer's: a database
that is down must not hold the metrics back) takes the queue every ``INTERVAL_SECONDS``, adds the
batch to the metrics (gateway/usage/metrics.py) and writes one log line per call
(gateway/usage/request_lines.py), and samples the gauges. Interpreter exit drains what is left.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import deque
from collections.abc import Callable

from gateway.conf import gateway_settings
from gateway.usage import metrics, request_lines
from gateway.usage.log_writer import writer
from gateway.usage.metrics import Observation

logger = logging.getLogger(__name__)

INTERVAL_SECONDS = 0.5
MAX_QUEUED = 100_000  # beyond this (the thread starved for long) the oldest are dropped, and counted
BATCH = 5_000


def log_queue_rows() -> float:
    return float(writer.pending())


metrics.sample_with(metrics.LOG_QUEUE_ROWS, log_queue_rows)


class Observer:
    def __init__(self) -> None:
        self._queue: deque[Observation] = deque(maxlen=MAX_QUEUED)
        self._lock = threading.Lock()  # one drain at a time (the thread, a scrape, exit)
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.dropped = 0

    @property
    def wanted(self) -> bool:
        """Whether finished calls are observed at all (read per call: two cached lookups)."""
        return gateway_settings.METRICS or request_lines.logger.isEnabledFor(logging.INFO)

    def add(self, observation: Observation) -> None:
        queue = self._queue
        if len(queue) == MAX_QUEUED:
            self.dropped += 1  # (deque's maxlen drops the oldest)
        queue.append(observation)
        if self._thread is None:
            self.start()

    def start(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._stopping.clear()
                self._thread = threading.Thread(target=self._run, name="call-observer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(INTERVAL_SECONDS):
            try:
                self.drain()
            except Exception:
                logger.exception("metrics and request log lines: a batch failed")

    def drain(self, sample: bool = True) -> int:
        """Observe everything queued now (and sample the gauges); returns how many calls."""
        done = 0
        with self._lock:
            queue = self._queue
            while queue:
                batch = [queue.popleft() for _ in range(min(len(queue), BATCH))]
                done += len(batch)
                if gateway_settings.METRICS:
                    metrics.record(batch)
                request_lines.emit(batch)
            if sample and gateway_settings.METRICS:
                metrics.sample_gauges()
        return done

    def pending(self) -> int:
        return len(self._queue)

    def stop(self) -> None:
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._thread = None
        try:
            self.drain()
        except Exception:
            logger.exception("metrics and request log lines: the last batch failed")


observer = Observer()
atexit.register(observer.stop)


def scrape_samplers() -> list[Callable[[], None]]:
    """What the worker answering a scrape does first: its own queue observed and its gauges sampled."""
    return [observer.drain]
