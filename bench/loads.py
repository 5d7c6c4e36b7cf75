"""Non-streaming load with wrk: one POST /v1/chat/completions body, fixed concurrency and duration."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

WRK_MISSING = (
    "wrk is not installed. On Debian/Ubuntu: `sudo apt-get install -y wrk` "
    "(or build it from https://github.com/wg/wrk)."
)

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_DURATION = re.compile(r"([\d.]+)(us|ms|s|m)\b")


@dataclass
class Target:
    """Something to load: a chat-completions URL, the headers to send and the model name."""

    label: str
    url: str
    headers: dict[str, str]
    model: str


@dataclass
class WrkResult:
    connections: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    cpu_ms_per_request: float | None = None
    other_load: float | None = None  # share of the machine's CPU used by other processes meanwhile

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(WRK_MISSING)
    return path


def lua_script(target: Target, directory: Path) -> Path:
    """A wrk script that POSTs a small chat body with the target's headers."""
    body = json.dumps({"model": target.model, "messages": [{"role": "user", "content": "Say hello in one word."}]})
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}", 'wrk.headers["Content-Type"] = "application/json"']
    lines += [f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}" for name, value in target.headers.items()]
    path = directory / f"wrk-{re.sub(r'[^a-z0-9]+', '-', target.label.lower())}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def _ms(text: str) -> float:
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"cannot read wrk duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str, connections: int) -> WrkResult:
    """Read requests, rate, p50/p99 (from --latency) and error counts from wrk's report."""
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    if not (done and rps and p50 and p99):
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return WrkResult(
        connections=connections,
        requests=int(done.group(1)),
        seconds=_ms(done.group(2) + done.group(3)) / 1000,
        rps=float(rps.group(1)),
        p50_ms=_ms(p50.group(1)),
        p99_ms=_ms(p99.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
    )


def run_wrk(target: Target, script: Path, connections: int, seconds: float, pin_cpu: str | None = "0") -> WrkResult:
    """One wrk run (one thread, optionally pinned to a CPU so it disturbs the server the same way each time)."""
    argv = [require_wrk(), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
            "--timeout", "10s", "-s", str(script), target.url]
    if pin_cpu is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", pin_cpu, *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout, connections)
