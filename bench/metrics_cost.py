"""What the metrics and the per-request log line cost per call, measured in one process.

    .venv/bin/python bench/metrics_cost.py

- on the event loop: what ``Call.log()`` adds (an ``Observation`` queued for the observer thread),
  with everything off and with the metrics on;
- in the observer thread: ``metrics.record`` per call, in prometheus_client's multiprocess mode (the
  mmap'ed files ``gateway_serve`` uses), for batches of 1 and of 200 calls; and one JSON log line.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

N = 20_000


def per_call(fn, n: int = N) -> float:
    """Microseconds per call of fn() (best of 3 rounds)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return best


def main() -> None:
    directory = tempfile.mkdtemp(prefix="gateway-metrics-bench-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory  # (before prometheus_client is imported)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proxy_site.settings")
    import django

    django.setup()
    from django.test import override_settings
    from django.utils import timezone

    from gateway.access.authentication import TokenInfo
    from gateway.log_format import JsonFormatter
    from gateway.usage import call as call_module
    from gateway.usage import metrics, request_lines
    from gateway.usage.call import Call
    from gateway.usage.log_writer import writer
    from gateway.usage.metrics import Observation
    from gateway.usage.observer import observer

    writer.enqueue = lambda row: None  # (only the observation's part is measured)
    token = TokenInfo(1, "bench", "sk-gw-abcdef", None, True, None, ())
    row = {"created_at": timezone.now(), "request_id": "req-1", "endpoint": "chat.completions", "token_id": 1,
           "requested_model": "gpt-4o-mini", "resolved_model": "gpt-4o-mini", "provider_account": "openai",
           "status_code": 200, "prompt_tokens": 12, "completion_tokens": 30, "cost": Decimal("0.00002"),
           "latency_ms": 230, "ttft_ms": 120, "stream": True, "attempts": 1, "error_type": ""}
    obs = Observation(row, "gpt-4o-mini", "sk-gw-abcdef", "", ())

    def logged_call() -> None:
        call = Call("chat.completions", "req-1", token=token)
        call.row = lambda: row  # type: ignore[method-assign]
        call.log()

    results = {}
    with override_settings(GATEWAY={"METRICS": False}):
        results["Call.log() (row stubbed), metrics and lines off"] = per_call(logged_call) - per_call(
            lambda: Call("chat.completions", "req-1", token=token))
    with override_settings(GATEWAY={"METRICS": True, "METRICS_TOKEN": "x"}):
        observer.add = observer._queue.append  # (no thread: the queue is emptied below)
        results["Call.log() (row stubbed), metrics on"] = per_call(logged_call) - per_call(
            lambda: Call("chat.completions", "req-1", token=token))
        observer._queue.clear()
    del call_module  # (imported so that Call.log's module is the one measured)
    results["metrics.record, batches of 1 (multiprocess files)"] = per_call(lambda: metrics.record([obs]))
    batch = [obs] * 200
    results["metrics.record, batches of 200 (multiprocess files)"] = per_call(lambda: metrics.record(batch), 200) / 200
    formatter = JsonFormatter()
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115
    handler.setFormatter(formatter)
    request_lines.logger.handlers = [handler]
    request_lines.logger.propagate = False
    request_lines.logger.setLevel(logging.INFO)
    results["one JSON request line (to /dev/null)"] = per_call(lambda: request_lines.emit([obs]))
    width = max(map(len, results))
    for name, micros in results.items():
        print(f"{name:<{width}}  {micros:6.2f} µs per call")
    shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
