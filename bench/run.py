"""Benchmark the gateway against a direct upstream (and optionally another gateway) in one run.

    .venv/bin/python bench/run.py            # full run, about 3 minutes
    .venv/bin/python bench/run.py --quick    # shorter loads, fewer streams

Starts a fast mock upstream and the gateway (gunicorn + uvicorn workers) on a throwaway
database, loads both with wrk and with concurrent streams, and prints a table that is also
written to bench/results/latest.md. Everything targets 127.0.0.1; every process it starts is
stopped at the end, also on Ctrl-C. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/run.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import procstats
from bench.loads import Target, WrkResult, lua_script, require_wrk, run_wrk
from bench.report import DIRECT, GATEWAY, LIMITED, OTHER, Results, render
from bench.services import DEFAULT_POSTGRES, DEFAULT_REDIS, PYTHON, ROOT, Database, Services, free_port
from bench.streams import raise_fd_limit


def csv_ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 s loads, streams 100 and 1000, 10 chunks")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per wrk load (default %(default)s)")
    parser.add_argument("--concurrency", type=csv_ints, default=[1, 16, 64], help="wrk connections (default 1,16,64)")
    parser.add_argument("--streams", type=csv_ints, default=[100, 1000, 2000],
                        help="concurrent stream counts (default 100,1000,2000; empty to skip)")
    parser.add_argument("--chunks", type=int, default=20, help="content chunks per stream (default %(default)s)")
    parser.add_argument("--chunk-delay-ms", type=float, default=50, help="ms between chunks (default %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="gateway workers (default %(default)s)")
    parser.add_argument("--mock-port", type=int, help="fixed port for the mock (so a compared gateway can use it)")
    parser.add_argument("--gateway-port", type=int, help="fixed port for the gateway (default: a free one)")
    parser.add_argument("--postgres", nargs="?", const=DEFAULT_POSTGRES, metavar="ADMIN_URL",
                        help=f"create (and drop) a bench database on this Postgres (default {DEFAULT_POSTGRES})")
    parser.add_argument("--database-url", help="use this DATABASE_URL as is (not created or dropped)")
    parser.add_argument("--redis", nargs="?", const=DEFAULT_REDIS, metavar="REDIS_URL",
                        help=f"give the gateway REDIS_URL (default {DEFAULT_REDIS})")
    parser.add_argument("--sqlite", action="store_true",
                        help="use SQLite and no Redis (default: Postgres + Redis on 127.0.0.1 when they answer)")
    parser.add_argument("--compare", metavar="URL", help="another OpenAI-compatible gateway (base or full URL)")
    parser.add_argument("--compare-header", action="append", default=[], metavar="'Name: value'")
    parser.add_argument("--compare-model", default="bench-model", help="model name on the compared gateway")
    parser.add_argument("--max-wait-quiet", type=float, default=30.0, metavar="SECONDS",
                        help="before each load, wait up to this long for other processes to use < 10%% CPU")
    parser.add_argument("--no-limited", dest="limited", action="store_false",
                        help="skip the non-streaming loads with a limited token (rpm, tpm and a budget)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "latest.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = min(args.duration, 2.0)
        args.streams = [k for k in args.streams if k <= 1000] or [100]
        args.chunks = min(args.chunks, 10)
    return args


def chat_url(url: str) -> str:
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    return url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")


def parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep:
        raise SystemExit(f"--compare-header must look like 'Name: value', not {text!r}")
    return name.strip(), value.strip()


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def run_streams(target: Target, count: int, timeout: float) -> dict[str, Any]:
    argv = [PYTHON, str(ROOT / "bench" / "streams.py"), "--url", target.url, "--model", target.model,
            "--count", str(count), "--timeout", str(timeout)]
    for name, value in target.headers.items():
        argv += ["--header", f"{name}: {value}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"stream client failed: {done.stderr}")
    return json.loads(done.stdout)


def settle(roots: list[int], max_wait: float) -> None:
    """Let the gateway finish its background work, then wait for other processes to quieten down."""
    time.sleep(0.5)
    share = procstats.wait_quiet(roots, 0.1, max_wait)
    if share >= 0.1:
        say(f"! other processes are using {share:.0%} of the CPU; these numbers will be disturbed")


def bench(args: argparse.Namespace, services: Services, workdir: Path) -> Results:
    require_wrk()
    raise_fd_limit(max([*args.streams, 0]) * 4 + 1024)  # inherited by the mock and the gateway
    results = Results(machine=procstats.machine_info(), setup={})

    if args.database_url:
        database = Database(args.database_url, "DATABASE_URL given")
    elif args.sqlite:
        database = Database.sqlite(workdir)
    else:  # Postgres + Redis when they answer (what production runs), else SQLite
        database = Database.postgres(args.postgres or DEFAULT_POSTGRES, workdir)
    if not args.sqlite:
        database.use_redis(args.redis or DEFAULT_REDIS)
    services.database = database

    mock_port = args.mock_port or free_port()
    say(f"starting mock upstream on 127.0.0.1:{mock_port}")
    mock_base = services.start_mock(mock_port, args.chunks, args.chunk_delay_ms)
    env = services.gateway_env(database)
    say(f"preparing the gateway database: {database.label}")
    token = services.configure_gateway(env, mock_base)
    port = args.gateway_port or free_port()
    say(f"starting the gateway on 127.0.0.1:{port} with {args.workers} workers")
    gateway = services.start_gateway(env, port, args.workers)

    targets = [Target(DIRECT, f"{mock_base}/chat/completions", {"Authorization": "Bearer bench-key"}, "bench-model"),
               Target(GATEWAY, f"http://127.0.0.1:{port}/v1/chat/completions",
                      {"Authorization": f"Bearer {token}"}, "bench-model")]
    if args.limited:  # limits this load never reaches: what checking and settling them costs
        limited = services.create_token(env, "bench-limited", "--rpm", "100000000", "--tpm", "2000000000",
                                        "--budget", "1000000", "--budget-period", "monthly")
        targets.append(Target(LIMITED, targets[1].url, {"Authorization": f"Bearer {limited}"}, "bench-model"))
    if args.compare:
        targets.append(Target(OTHER, chat_url(args.compare), dict(map(parse_header, args.compare_header)),
                              args.compare_model))
    results.setup = {
        "Database": database.label,
        "Gateway": f"manage.py gateway_serve, {args.workers} workers (gunicorn + uvicorn workers)",
        "Mock upstream": f"bench/mock_upstream.py, 1 process; streams of {args.chunks} chunks "
                         f"{args.chunk_delay_ms:g} ms apart",
        "Load": f"wrk -t1 pinned to CPU 0, {args.duration:g} s per run after a warm-up",
    }
    if args.compare:
        results.setup["Compared"] = f"{chat_url(args.compare)} (model {args.compare_model})"
    scripts = {t.label: lua_script(t, workdir) for t in targets}

    say("warming up")
    for target in targets:
        warm = run_wrk(target, scripts[target.label], 16, 2)
        if warm.errors:
            say(f"! warm-up against {target.label}: {warm.non_2xx} non-2xx, {warm.socket_errors} socket errors")
    time.sleep(1)
    master_and_workers = [gateway.pid, *procstats.children_of(gateway.pid)]
    results.idle_rss = [procstats.rss_bytes(pid) for pid in master_and_workers]

    sampler = procstats.MemorySampler(gateway.pid)
    roots = [process.pid for process in services.processes]
    other = procstats.OtherLoad(roots)
    sampler.start()
    for c in args.concurrency:
        results.wrk[c] = {}
        for target in targets:
            settle(roots, args.max_wait_quiet)
            say(f"wrk c={c} against {target.label} for {args.duration:g} s")
            other.start()
            before = procstats.cpu_seconds(procstats.tree(gateway.pid))
            result: WrkResult = run_wrk(target, scripts[target.label], c, args.duration)
            cpu = procstats.cpu_seconds(procstats.tree(gateway.pid)) - before
            result.other_load = other.stop()
            if target.label in (GATEWAY, LIMITED):
                result.cpu_ms_per_request = cpu * 1000 / max(result.requests, 1)
            if target.label == GATEWAY:
                results.gateway_cpu_s += cpu
                results.gateway_requests += result.requests
            results.wrk[c][target.label] = result
    results.peak_rss_nonstream = sampler.stop()

    stream_timeout = args.chunks * args.chunk_delay_ms / 1000 + 60
    for k in args.streams:
        results.streams[k] = {}
        for target in [t for t in targets if t.label != LIMITED]:
            # steady state: warm caches (the token cache lives CACHE_SECONDS) as ongoing traffic would
            run_wrk(target, scripts[target.label], 4, 1)
            settle(roots, args.max_wait_quiet)
            say(f"{k} concurrent streams against {target.label}")
            sampler.start()
            other.start()
            before = procstats.cpu_seconds(procstats.tree(gateway.pid))
            results.streams[k][target.label] = stats = run_streams(target, k, stream_timeout)
            cpu = procstats.cpu_seconds(procstats.tree(gateway.pid)) - before
            stats["other_load"] = other.stop()
            peak = sampler.stop()
            if target.label == GATEWAY:
                results.peak_rss_streams[k] = peak
                stats["cpu_ms_per_stream"] = cpu * 1000 / k
            if stats["failed"]:
                results.notes.append(f"{k} streams via {target.label}: {stats['failed']} failed; first: "
                                     f"{stats['first_error'][:200]}")
    for c, runs in results.wrk.items():
        for label, r in runs.items():
            if r.errors:
                results.notes.append(f"wrk c={c} {label}: {r.non_2xx} non-2xx and {r.socket_errors} socket errors")
    errors = [line for line in services.log_tail("gateway", 200).splitlines() if "Error" in line or "error" in line]
    if errors:
        results.notes.append(f"gateway log has {len(errors)} error lines; last: {errors[-1][:200]}")
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        services = Services(Path(tmp))
        try:
            results = bench(args, services, Path(tmp))
        except KeyboardInterrupt:
            say("interrupted; stopping everything")
            return 130
        except RuntimeError as exc:
            say(f"failed: {exc}")
            return 1
        finally:
            services.close()
            if services.database is not None:
                services.database.drop()
    text = render(results)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    say(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
