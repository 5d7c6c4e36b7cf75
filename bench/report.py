"""The bench's results, the targets they are held to, and the table printed and written as Markdown."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bench.loads import WrkResult

MB = 1024 * 1024
DIRECT, GATEWAY, OTHER = "direct (mock)", "gateway", "compared"
# The gateway again, with a token that has an rpm, a tpm and a monthly budget (never reached).
LIMITED = "gateway, limited token"


@dataclass
class Results:
    machine: dict[str, str]
    setup: dict[str, str]
    wrk: dict[int, dict[str, WrkResult]] = field(default_factory=dict)
    gateway_cpu_s: float = 0.0
    gateway_requests: int = 0
    idle_rss: list[int] = field(default_factory=list)  # master first, then each worker
    peak_rss_nonstream: int = 0
    streams: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)
    peak_rss_streams: dict[int, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _f(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{share:.0%}"


def _other(label: str, share: float | None) -> str:
    return "n/a" if label == OTHER else _pct(share)  # the compared gateway's own CPU counts as "other"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table whose columns are padded so it also reads as plain text."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    return [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *[line(r) for r in rows]]


def targets(res: Results) -> list[list[str]]:
    """[target, measured, limit, PASS/MISS] for each target that this run measured."""
    out: list[list[str]] = []

    def check(name: str, value: float | None, limit: float, ok: bool | None, unit: str) -> None:
        verdict = "n/a" if ok is None else ("PASS" if ok else "MISS")
        out.append([name, f"{_f(value)} {unit}".strip(), limit_text(limit, unit), verdict])

    one = res.wrk.get(1, {})
    if DIRECT in one and GATEWAY in one:
        d, g = one[DIRECT], one[GATEWAY]
        check("added latency c=1, p50", g.p50_ms - d.p50_ms, 1.5, g.p50_ms - d.p50_ms <= 1.5, "ms")
        check("added latency c=1, p99", g.p99_ms - d.p99_ms, 5.0, g.p99_ms - d.p99_ms <= 5.0, "ms")
    top = max(res.wrk) if res.wrk else None
    if top is not None and GATEWAY in res.wrk[top]:
        g = res.wrk[top][GATEWAY]
        check(f"throughput c={top} (no errors)", g.rps, 1500, g.rps >= 1500 and g.errors == 0, "rps")
        if OTHER in res.wrk[top]:
            ratio = g.rps / res.wrk[top][OTHER].rps if res.wrk[top][OTHER].rps else float("inf")
            check(f"throughput c={top} vs compared gateway", ratio, 10, ratio >= 10, "x")
            if LIMITED in res.wrk[top]:
                limited = res.wrk[top][LIMITED]
                ratio = limited.rps / res.wrk[top][OTHER].rps if res.wrk[top][OTHER].rps else float("inf")
                check(f"throughput c={top} with limits vs compared gateway", ratio, 20,
                      ratio >= 20 and limited.errors == 0, "x")
    if res.gateway_requests:
        cpu = res.gateway_cpu_s * 1000 / res.gateway_requests
        check("CPU per non-streamed request (all loads)", cpu, 1.0, cpu <= 1.0, "ms")
    if res.streams:
        k = max(res.streams)
        runs = res.streams[k]
        if GATEWAY in runs:
            g = runs[GATEWAY]
            check(f"{k} streams all complete", g["completed"], k, g["completed"] == k, "")
            if DIRECT in runs:
                d = runs[DIRECT]
                check(f"{k} streams TTFB p99 - direct", g["ttfb_p99_ms"] - d["ttfb_p99_ms"], 50,
                      g["ttfb_p99_ms"] - d["ttfb_p99_ms"] <= 50, "ms")
                ratio = g["total_p99_ms"] / d["total_p99_ms"] if d["total_p99_ms"] else float("nan")
                check(f"{k} streams total p99 / direct", ratio, 1.10, ratio <= 1.10, "x")
        if k in res.peak_rss_streams:
            peak = res.peak_rss_streams[k] / MB
            check(f"gateway RSS while holding {k} streams", peak, 400, peak <= 400, "MB")
    if len(res.idle_rss) > 1:
        worst = max(res.idle_rss[1:]) / MB
        check("idle RSS per worker (largest)", worst, 150, worst <= 150, "MB")
    return out


def limit_text(limit: float, unit: str) -> str:
    if unit == "rps":
        return f">= {limit:,.0f} rps"
    if unit == "x" and limit >= 2:
        return f">= {limit:g}x"
    if unit == "":
        return f"= {limit:g}"
    return f"<= {limit:g} {unit}".strip()


def render(res: Results) -> str:
    m = res.machine
    lines = ["# Gateway benchmark", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory']} RAM, Linux {m['kernel']}, Python {m['python']}",
             *[f"{key}: {value}" for key, value in res.setup.items()], ""]
    if res.wrk:
        lines += ["## Non-streaming chat completions (wrk -t1, small body)", ""]
        rows = []
        for c, runs in sorted(res.wrk.items()):
            for label, r in runs.items():
                rows.append([f"c={c}", label, _f(r.rps, 0), _f(r.p50_ms), _f(r.p99_ms),
                             f"{r.non_2xx}/{r.socket_errors}", _f(r.cpu_ms_per_request, 3), _other(label, r.other_load)])
        lines += table(["load", "target", "req/s", "p50 ms", "p99 ms", "non-2xx/socket err", "gateway CPU ms/req",
                        "other CPU"], rows)
        one = res.wrk.get(1, {})
        if DIRECT in one and GATEWAY in one:
            lines += ["", f"Added latency at c=1: p50 +{_f(one[GATEWAY].p50_ms - one[DIRECT].p50_ms)} ms, "
                          f"p99 +{_f(one[GATEWAY].p99_ms - one[DIRECT].p99_ms)} ms"]
        if any(LIMITED in runs for runs in res.wrk.values()):
            lines += ["", "Limited token (rpm, tpm, budget) vs a token without limits:"]
            for c, runs in sorted(res.wrk.items()):
                if LIMITED in runs and GATEWAY in runs:
                    g, lim = runs[GATEWAY], runs[LIMITED]
                    lines.append(f"- c={c}: {_f(lim.rps / g.rps if g.rps else float('nan'), 2)}x the requests/s, "
                                 f"p50 +{_f(lim.p50_ms - g.p50_ms)} ms, CPU +{_f(lim.cpu_ms_per_request - g.cpu_ms_per_request, 3)}"
                                 " ms per request")
        if any(OTHER in runs for runs in res.wrk.values()):
            lines += ["", "Gateway vs compared gateway:"]
            for c, runs in sorted(res.wrk.items()):
                if OTHER in runs and GATEWAY in runs:
                    g, o = runs[GATEWAY], runs[OTHER]
                    lines.append(f"- c={c}: {_f(g.rps / o.rps if o.rps else float('nan'), 1)}x the requests/s, "
                                 f"p50 {_f(o.p50_ms / g.p50_ms if g.p50_ms else float('nan'), 1)}x lower")
        lines.append("")
    if res.streams:
        lines += ["## Concurrent streams (all opened at once after a 1 s warm-up; TTFB = first body byte)", ""]
        rows = []
        for k, runs in sorted(res.streams.items()):
            for label, s in runs.items():
                rows.append([str(k), label, f"{s['completed']}/{s['count']}", _f(s["ttfb_p50_ms"], 1),
                             _f(s["ttfb_p99_ms"], 1), _f(s["total_p50_ms"], 1), _f(s["total_p99_ms"], 1),
                             _f(res.peak_rss_streams[k] / MB, 0) if label == GATEWAY and k in res.peak_rss_streams
                             else "-", _f(s.get("cpu_ms_per_stream"), 2), _other(label, s.get("other_load"))])
        lines += table(["streams", "target", "completed", "TTFB p50 ms", "TTFB p99 ms", "total p50 ms",
                        "total p99 ms", "gateway peak RSS MB", "gateway CPU ms/stream", "other CPU"], rows)
        lines.append("")
    if res.idle_rss:
        workers = ", ".join(_f(r / MB, 0) for r in res.idle_rss[1:])
        lines += ["## Memory (RSS)", "",
                  f"- idle after warm-up: master {_f(res.idle_rss[0] / MB, 0)} MB, workers {workers} MB",
                  f"- whole gateway peak during non-streaming loads: {_f(res.peak_rss_nonstream / MB, 0)} MB", ""]
    lines += ["## Targets", "", *table(["target", "measured", "limit", "result"], targets(res))]
    shares = [r.other_load or 0.0 for runs in res.wrk.values() for label, r in runs.items() if label != OTHER]
    shares += [s.get("other_load") or 0.0 for runs in res.streams.values() for label, s in runs.items()
               if label != OTHER]
    notes = list(res.notes)
    if shares and max(shares) >= 0.1:
        notes.insert(0, f"Other processes used up to {max(shares):.0%} of the machine's CPU during some loads "
                            "(column 'other CPU'): those rows are disturbed; rerun on a quiet machine.")
    if notes:
        lines += ["", "## Notes", "", *[f"- {note}" for note in notes]]
    return "\n".join(lines) + "\n"
