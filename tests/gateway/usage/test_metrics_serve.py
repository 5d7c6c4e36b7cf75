"""The production server (`manage.py gateway_serve`, 2 workers): a scrape answered by either worker counts
every worker's calls, a worker that dies keeps its counts, and each call has one JSON log line."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.conftest import UPSTREAM_KEY
from tests.gateway.usage.metrics_scrape import METRICS_TOKEN, scrape, value
from tests.servers import ServedGateway, sqlite_gateway

WORKERS = 2


@pytest.fixture
def metered_gateway(tmp_path: Path, fake_openai) -> Iterator[dict]:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"left by an earlier server")  # emptied at start
    env, token = sqlite_gateway(tmp_path, fake_openai.base_url, "metered", GATEWAY_METRICS="true",
                                GATEWAY_METRICS_TOKEN=METRICS_TOKEN, GATEWAY_METRICS_DIR=str(metrics_dir),
                                GATEWAY_LOG_FORMAT="json")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with ServedGateway(env, workers=WORKERS, start_timeout=30) as served:
        yield {"url": served.url, "token": token, "served": served, "dir": metrics_dir}


def chat(url: str, token: str) -> str:
    """One call on a connection of its own (so the workers share the calls); returns its request id."""
    with httpx.Client(timeout=30) as client:
        answer = client.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {token}"},
                             json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200, answer.text
    return answer.headers["x-request-id"]


def per_worker(metrics_dir: Path) -> dict[int, float]:
    """Each worker's own count of calls, from its own file."""
    counts = {}
    for path in metrics_dir.glob("counter_*.db"):
        samples = [s for family in MultiProcessCollector.merge([str(path)]) for s in family.samples]
        counts[int(path.stem.split("_")[1])] = sum(s.value for s in samples if s.name == "gateway_requests_total")
    return counts


def requests_total(url: str) -> float:
    with httpx.Client():  # (a new connection each time: either worker may answer)
        return value(scrape(url), "gateway_requests_total", endpoint="chat.completions", status="200")


def settled_total(url: str, expected: int) -> float:
    """The count once every worker's observer thread has taken its calls (each does every 0.5 s)."""
    deadline = time.monotonic() + 15
    while (total := requests_total(url)) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    return total


def workers_of(master: int) -> list[int]:
    return [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]


def test_every_worker_counts_in_each_scrape_and_each_call_has_a_json_line(metered_gateway: dict) -> None:
    url, token, metrics_dir = metered_gateway["url"], metered_gateway["token"], metered_gateway["dir"]
    assert not (metrics_dir / "counter_1.db").exists()
    ids: list[str] = []
    with ThreadPoolExecutor(4) as pool:
        # Until both workers have served some (the kernel shares the connections out; bounded).
        while len(ids) < 200 and (len(ids) < 20 or sum(1 for n in per_worker(metrics_dir).values() if n) < WORKERS):
            ids += pool.map(lambda _: chat(url, token), range(10))
            time.sleep(0.6)  # (their observer threads write to the files every 0.5 s)
    shares = per_worker(metrics_dir)
    assert sum(1 for n in shares.values() if n) == WORKERS, shares

    assert settled_total(url, len(ids)) == len(ids)
    assert [requests_total(url) for _ in range(6)] == [len(ids)] * 6

    # A worker that dies keeps its counts; its live gauges go with it.
    victim = workers_of(metered_gateway["served"].process.pid)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while (metrics_dir / f"gauge_livesum_{victim}.db").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (metrics_dir / f"gauge_livesum_{victim}.db").exists()
    ids.append(chat(url, token))
    assert settled_total(url, len(ids)) == len(ids)

    output = metered_gateway["served"].stop()  # SIGTERM; it must end within 30 s
    assert not list(metrics_dir.glob("*.db"))  # tidied at exit

    assert token not in output and token[12:] not in output and UPSTREAM_KEY not in output
    lines = [orjson.loads(line) for line in output.splitlines() if line.startswith("{")]
    calls = [line for line in lines if line["logger"] == "gateway.requests"]
    assert sorted(line["request_id"] for line in calls) == sorted(ids)
    line = calls[0]
    assert line["level"] == "INFO" and line["endpoint"] == "chat.completions" and line["status"] == 200
    assert line["token"] == token[:12] and line["model"] == line["entry"] == "gpt-4o-mini"
    assert line["provider"] == "fake-openai" and line["attempts"] == 1 and line["stream"] is False
    assert isinstance(line["latency_ms"], int) and line["prompt_tokens"] > 0 and line["completion_tokens"] > 0
    assert float(line["cost_usd"]) > 0
