"""Open K chat-completion streams at once and time each: first body byte, total, completed.

A raw asyncio protocol on uvloop with httptools' response parser: on this machine aiohttp's
client needed ~1.2 s (p50) just to get 2,000 streams going against the mock, so it would have
measured itself; this client opens them in ~20 ms.

Run as its own process (so the orchestrator's samplers do not share its GIL); prints one JSON
object on stdout:

    .venv/bin/python bench/streams.py --url http://127.0.0.1:8000/v1/chat/completions \
        --header 'Authorization: Bearer sk-...' --model bench-model --count 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import resource
import sys
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

import httptools
import uvloop


@dataclass
class StreamStats:
    count: int
    completed: int
    failed: int
    ttfb_p50_ms: float
    ttfb_p99_ms: float
    total_p50_ms: float
    total_p99_ms: float
    wall_s: float
    first_error: str = ""


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class StreamClient(asyncio.Protocol):
    """One streamed request on its own connection; resolves ``done`` with timings or an error text."""

    def __init__(self, request: bytes, began: float, done: asyncio.Future) -> None:
        self.request = request
        self.began = began
        self.done = done
        self.parser = httptools.HttpResponseParser(self)
        self.first_body = 0.0
        self.tail = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._finish(f"bad HTTP response: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(f"connection closed before the end ({exc or 'EOF'})")

    def on_body(self, body: bytes) -> None:
        if not self.first_body:
            self.first_body = time.perf_counter()
        if b'"error"' in body:
            self._finish(f"error event: {body[:200]!r}")
        self.tail = (self.tail + body)[-64:]

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if status != 200:
            self._finish(f"HTTP {status}: {self.tail!r}")
        elif b"data: [DONE]" not in self.tail:
            self._finish(f"stream ended without [DONE] (tail {self.tail!r})")
        else:
            now = time.perf_counter()
            self._finish(((self.first_body - self.began) * 1000, (now - self.began) * 1000))

    def _finish(self, result: tuple[float, float] | str) -> None:
        if not self.done.done():
            self.done.set_result(result)
        if self.transport is not None:
            self.transport.close()


def http_request(url: str, headers: dict[str, str], body: bytes) -> tuple[str, int, bytes]:
    """(host, port, raw HTTP/1.1 request bytes) for a POST of ``body`` to ``url``."""
    parsed = urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    lines = [f"POST {parsed.path or '/'}{'?' + parsed.query if parsed.query else ''} HTTP/1.1",
             f"Host: {parsed.netloc}", "Content-Type: application/json", f"Content-Length: {len(body)}",
             "Accept: text/event-stream", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return host, port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def one_stream(host: str, port: int, request: bytes, start: asyncio.Event,
                     timeout: float) -> tuple[float, float] | str:
    """(ttfb_ms, total_ms) for a stream that ended with ``data: [DONE]``, else an error description.

    Timed from just before connecting to the first body byte (TTFB) and to the end of the body.
    """
    await start.wait()
    loop = asyncio.get_running_loop()
    began = time.perf_counter()
    done: asyncio.Future = loop.create_future()
    transport = None
    try:
        async with asyncio.timeout(timeout):
            transport, _ = await loop.create_connection(lambda: StreamClient(request, began, done), host, port)
            return await done
    except (TimeoutError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        if transport is not None:
            transport.close()


async def run(url: str, headers: dict[str, str], model: str, count: int, timeout: float) -> StreamStats:
    body = json.dumps({"model": model, "stream": True, "stream_options": {"include_usage": True},
                       "messages": [{"role": "user", "content": "Tell me a short story."}]}).encode()
    host, port, request = http_request(url, headers, body)
    start = asyncio.Event()
    tasks = [asyncio.create_task(one_stream(host, port, request, start, timeout)) for _ in range(count)]
    await asyncio.sleep(0.05)  # every task is waiting on the event: release them together
    began = time.perf_counter()
    start.set()
    results = await asyncio.gather(*tasks)
    wall = time.perf_counter() - began
    timings = [r for r in results if isinstance(r, tuple)]
    errors = [r for r in results if isinstance(r, str)]
    return StreamStats(
        count=count, completed=len(timings), failed=len(errors),
        ttfb_p50_ms=percentile([t[0] for t in timings], 50), ttfb_p99_ms=percentile([t[0] for t in timings], 99),
        total_p50_ms=percentile([t[1] for t in timings], 50), total_p99_ms=percentile([t[1] for t in timings], 99),
        wall_s=wall, first_error=errors[0] if errors else "",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--header", action="append", default=[], help="'Name: value' (repeatable)")
    parser.add_argument("--model", default="bench-model")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per stream")
    args = parser.parse_args()
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    raise_fd_limit(args.count * 2 + 256)
    stats = uvloop.run(run(args.url, headers, args.model, args.count, args.timeout))
    json.dump(asdict(stats), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
