"""CPU time and memory of a process tree, read from /proc (Linux only)."""

from __future__ import annotations

import os
import platform
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # the command name is in parentheses and may hold spaces: split after the last ')'
    return text[text.rindex(")") + 2:].split()


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's children)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for tid in tasks:
        try:
            found += [int(p) for p in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo += children_of(current)
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes, in seconds."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    return total / _TICKS


def rss_bytes(pid: int) -> int:
    fields = _stat_fields(pid)
    return int(fields[21]) * _PAGE if fields is not None else 0  # field 24 of stat(5)


@dataclass
class MemorySampler:
    """Samples the summed RSS of a process tree in a thread; ``peak`` is the largest seen."""

    root: int
    interval: float = 0.1
    peak: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> int:
        total = sum(rss_bytes(pid) for pid in tree(self.root))
        self.peak = max(self.peak, total)
        return total

    def start(self) -> None:
        self.peak = 0
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> int:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.peak


def machine_info() -> dict[str, str]:
    """CPU model, core count, kernel and Python version, for the report's header."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except FileNotFoundError:
        pass
    try:
        mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))
        memory = f"{mem_kb / 1024 / 1024:.1f} GiB"
    except (FileNotFoundError, StopIteration):
        memory = "unknown"
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
    }


def busy_seconds() -> float:
    """CPU time the whole machine spent busy since boot (all CPUs), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / _TICKS


def own_seconds(roots: list[int]) -> float:
    """CPU time of this process, its reaped children (wrk, stream clients) and the live trees of ``roots``."""
    times = os.times()
    live = cpu_seconds([pid for root in roots for pid in tree(root)])
    return times.user + times.system + times.children_user + times.children_system + live


@dataclass
class OtherLoad:
    """How busy the rest of the machine (other processes) was between ``start`` and ``stop``."""

    roots: list[int]
    _t0: float = 0.0
    _busy0: float = 0.0
    _own0: float = 0.0

    def start(self) -> None:
        self._t0, self._busy0, self._own0 = time.monotonic(), busy_seconds(), own_seconds(self.roots)

    def stop(self) -> float:
        """Share of the machine's CPU capacity used by processes that are not ours, 0..1."""
        wall = time.monotonic() - self._t0
        other = (busy_seconds() - self._busy0) - (own_seconds(self.roots) - self._own0)
        return max(0.0, other / (wall * (os.cpu_count() or 1))) if wall > 0 else 0.0


def wait_quiet(roots: list[int], limit: float = 0.1, max_wait: float = 30.0) -> float:
    """Wait (up to ``max_wait`` s) until other processes use under ``limit`` of the CPU over 1 s; the last share."""
    deadline = time.monotonic() + max_wait
    while True:
        meter = OtherLoad(roots)
        meter.start()
        time.sleep(1)
        share = meter.stop()
        if share < limit or time.monotonic() >= deadline:
            return share
