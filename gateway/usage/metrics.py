"""Prometheus metrics of the /v1 calls, for ``GET /metrics`` (gateway/api/metrics.py).

Nothing here runs on the event loop: each finished call is queued by ``Call.log()`` and the
observer thread (gateway/usage/observer.py) hands this module a batch of them. A batch is summed
first — one counter increment per label set and one histogram bucket increment per label set and
bucket — and only then written to the metric values: under ``gateway_serve`` each write is an
mmap'ed file update (prometheus_client's multiprocess mode, so that a scrape answered by any
worker counts every worker), a few microseconds each.

Label values are bounded whatever clients send: ``model`` is the registry entry's name (a pattern
entry's pattern) or ``unknown`` (no entry: an unknown model, a refused token, a bad body), so
random model names all count as one; ``provider`` is the provider account's name (``none``: no
upstream was chosen), ``endpoint`` the gateway's own endpoint name, ``status`` an HTTP status, and
every value is cut to ``MAX_LABEL_CHARS``.

Gauges whose value lives elsewhere (``gateway_deployments_in_cooldown``) are read from a source
registered with ``sample_with``; the observer thread samples every source about once a second.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

logger = logging.getLogger(__name__)

MAX_LABEL_CHARS = 100
UNKNOWN_MODEL = "unknown"
NO_PROVIDER = "none"
# Seconds. Whole answers of chat models take seconds; first tokens arrive in tens of milliseconds.
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, math.inf)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, math.inf)
LIMIT_KINDS = frozenset({"rpm", "tpm", "parallel", "budget"})
# The classic text format, which every Prometheus version reads (the names here need no escaping).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# The metrics are written to this registry; a scrape reads it (one process) or every worker's files.
registry = CollectorRegistry(auto_describe=True)

REQUESTS = Counter("gateway_requests", "Finished /v1 calls.", ["endpoint", "model", "provider", "status"],
                   registry=registry)
DURATION = Histogram("gateway_request_duration_seconds", "Time from a /v1 call's arrival to its answer's end.",
                     ["endpoint", "model", "provider"], buckets=DURATION_BUCKETS, registry=registry)
TTFT = Histogram("gateway_time_to_first_token_seconds", "Time from a streamed call's arrival to its first token.",
                 ["endpoint", "model", "provider"], buckets=TTFT_BUCKETS, registry=registry)
TOKENS = Counter("gateway_tokens", "Tokens used (reported by the upstream, or estimated).",
                 ["model", "provider", "kind"], registry=registry)
COST = Counter("gateway_cost_usd", "Cost of the calls in USD, at the registry's or the price list's prices.",
               ["model", "provider"], registry=registry)
LIMIT_REJECTIONS = Counter("gateway_limit_rejections", "Calls a limit refused (429).", ["limit"], registry=registry)
UPSTREAM_ERRORS = Counter("gateway_upstream_errors", "Failed upstream attempts (fallbacks included), by cause: "
                          "the upstream's HTTP status, timeout, unreachable, malformed, stream_failed.",
                          ["provider", "code"], registry=registry)
# Per worker, summed over the live workers (a dead worker's value goes with it).
LOG_QUEUE_ROWS = Gauge("gateway_log_queue_rows", "Request-log rows waiting to be written, all workers together.",
                       registry=registry, multiprocess_mode="livesum")
# The highest any live worker reports: cooldowns are a property of the deployments, not of a worker.
DEPLOYMENTS_IN_COOLDOWN = Gauge("gateway_deployments_in_cooldown", "Deployments skipped for now after failures.",
                                registry=registry, multiprocess_mode="livemax")

_sources: dict[Gauge, Callable[[], float]] = {}


def sample_with(gauge: Gauge, source: Callable[[], float]) -> None:
    """Have ``gauge`` report ``source()``, called from the observer thread about once a second (and by
    the worker answering a scrape): it must be cheap and safe to call from another thread, e.g. the
    ``len()`` of a dict. A gauge without a source reports 0. For instance, where cooldowns are kept::

        metrics.sample_with(metrics.DEPLOYMENTS_IN_COOLDOWN, lambda: len(_cooling))
    """
    _sources[gauge] = source


def sample_gauges() -> None:
    for gauge, source in list(_sources.items()):
        try:
            gauge.set(float(source()))
        except Exception:
            logger.exception("metrics: the source of %s failed", gauge._name)


def label(value: str) -> str:
    return value[:MAX_LABEL_CHARS]


def status_label(status: int) -> str:
    return str(status) if 100 <= status <= 599 else "other"


@dataclass(frozen=True, slots=True)
class Observation:
    """What the metrics and the request's log line take from one finished call (built by ``Call.log()``:
    the log row, a snapshot, and a few facts the row does not hold)."""

    row: dict[str, Any]
    model: str  # the registry entry's name, or "" (no entry)
    token_prefix: str
    limit: str  # the limit that refused the call (rpm, tpm, parallel, budget), or ""
    upstream_errors: tuple[tuple[str, str], ...]  # (provider account, cause) per failed upstream attempt
    quiet: bool = False  # counted, but no log line (a failed authentication past the minute's quota)


def _histogram_add(histogram: Histogram, labels: tuple[str, ...], counts: dict[int, int], total: float) -> None:
    """Several observations at once: ``observe`` takes one, and each of its writes is a file update
    under multiprocess mode. (The child's ``_sum`` and ``_buckets`` are the values ``observe`` adds to;
    tests/gateway/usage/test_metrics.py checks the exposed counts and sums.)"""
    child = histogram.labels(*labels)
    child._sum.inc(total)
    for index, count in counts.items():
        child._buckets[index].inc(count)


def record(observations: Sequence[Observation]) -> None:
    """Add a batch of finished calls to the metrics, summed per label set first."""
    requests: dict[tuple[str, ...], int] = defaultdict(int)
    tokens: dict[tuple[str, ...], int] = defaultdict(int)
    costs: dict[tuple[str, ...], float] = defaultdict(float)
    rejections: dict[str, int] = defaultdict(int)
    errors: dict[tuple[str, ...], int] = defaultdict(int)
    durations: dict[tuple[str, ...], tuple[dict[int, int], list[float]]] = {}
    ttfts: dict[tuple[str, ...], tuple[dict[int, int], list[float]]] = {}

    def add(into: dict, labels: tuple[str, ...], bounds: tuple[float, ...], seconds: float) -> None:
        counts, total = into.setdefault(labels, (defaultdict(int), [0.0]))
        counts[bisect.bisect_left(bounds, seconds)] += 1
        total[0] += seconds

    for obs in observations:
        row = obs.row
        endpoint = label(row.get("endpoint") or "")
        model = label(obs.model) if obs.model else UNKNOWN_MODEL
        provider = label(row.get("provider_account") or "") or NO_PROVIDER
        requests[(endpoint, model, provider, status_label(row.get("status_code") or 0))] += 1
        where = (endpoint, model, provider)
        add(durations, where, DURATION_BUCKETS, max(0.0, (row.get("latency_ms") or 0) / 1000))
        if row.get("ttft_ms") is not None:
            add(ttfts, where, TTFT_BUCKETS, max(0.0, row["ttft_ms"] / 1000))
        if row.get("prompt_tokens"):
            tokens[(model, provider, "prompt")] += row["prompt_tokens"]
        if row.get("completion_tokens"):
            tokens[(model, provider, "completion")] += row["completion_tokens"]
        if row.get("cost"):
            costs[(model, provider)] += float(row["cost"])
        if obs.limit in LIMIT_KINDS:
            rejections[obs.limit] += 1
        for account, cause in obs.upstream_errors:
            errors[(label(account) or NO_PROVIDER, label(cause))] += 1
    for labels, n in requests.items():
        REQUESTS.labels(*labels).inc(n)
    for labels, n in tokens.items():
        TOKENS.labels(*labels).inc(n)
    for labels, usd in costs.items():
        COST.labels(*labels).inc(usd)
    for kind, n in rejections.items():
        LIMIT_REJECTIONS.labels(kind).inc(n)
    for labels, n in errors.items():
        UPSTREAM_ERRORS.labels(*labels).inc(n)
    for histogram, found in ((DURATION, durations), (TTFT, ttfts)):
        for labels, (counts, total) in found.items():
            _histogram_add(histogram, labels, counts, total[0])


def multiprocess_dir() -> str:
    """Where every worker's metric files are (set by ``gateway_serve``); "" in a single process."""
    return getattr(settings, "METRICS_MULTIPROCESS_DIR", "")


def exposition(sample_first: Iterable[Callable[[], None]] = ()) -> tuple[bytes, str]:
    """The text Prometheus scrapes, and its content type: every worker's counts under ``gateway_serve``."""
    for sample in sample_first:
        sample()
    path = multiprocess_dir()
    if not path:
        return generate_latest(registry), CONTENT_TYPE
    from prometheus_client.multiprocess import MultiProcessCollector

    combined = CollectorRegistry()
    MultiProcessCollector(combined, path=path)
    return generate_latest(combined), CONTENT_TYPE
