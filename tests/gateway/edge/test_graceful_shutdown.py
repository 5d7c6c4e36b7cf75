"""SIGTERM to the production server (``gateway_serve``: gunicorn's master, two uvicorn workers) under a
steady load of plain and streamed chat completions: new connections are refused, what runs finishes
within the grace period, streams still open at its end get an error event, and every answer a client
received has its log row, exactly."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.servers import ServedGateway, sqlite_gateway

GRACE = 3
LONG_STREAMS = 4
SENDERS = 8


@pytest.fixture
def loaded_gateway(tmp_path: Path, fake_openai) -> Iterator[dict]:
    env, token = sqlite_gateway(tmp_path, fake_openai.base_url, "load", priced=False,
                                GATEWAY_GRACEFUL_TIMEOUT=str(GRACE), GATEWAY_LOG_SPOOL_PATH=str(tmp_path / "spool.jsonl"))
    with ServedGateway(env, workers=2) as served:
        fake_openai.event_delay = 0.05  # a stream of n words lasts about n * 50 ms
        yield {"url": served.url, "port": served.port, "token": token, "env": env, "served": served,
               "db": tmp_path / "gateway.sqlite3"}


def one_request(url: str, token: str, stream: bool, words: int) -> str:
    """Send one chat completion; what the client saw: ok (a whole answer: JSON, or a stream to its
    [DONE]), cut (a stream ended by an error event), broken (a stream that stopped without either),
    refused (no connection), or failed (any other answer or error)."""
    body = orjson.dumps({"model": "gpt-4o-mini", "stream": stream,
                         "messages": [{"role": "user", "content": " ".join(["word"] * words)}]})
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    try:
        with httpx.Client(timeout=60, limits=httpx.Limits(max_keepalive_connections=0)) as client, \
                client.stream("POST", f"{url}/v1/chat/completions", content=body, headers=headers) as response:
            if response.status_code != 200:
                response.read()
                return f"status {response.status_code}"
            if not stream:
                response.read()
                return "ok" if response.json()["choices"][0]["message"]["content"] else "failed"
            last = ""
            try:
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        last = line[6:]
            except httpx.HTTPError:
                return "broken"
            if last == "[DONE]":
                return "ok"
            if last.startswith("{") and orjson.loads(last).get("error", {}).get("code") == "server_shutting_down":
                return "cut"
            return "broken"
    except httpx.ConnectError:
        return "refused"
    except httpx.HTTPError:
        return "failed"


def refuses_connections(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        try:
            sock.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
        return False


def test_sigterm_under_load_finishes_or_cuts_every_request_with_a_word_and_logs_each(loaded_gateway: dict) -> None:
    url, token, served = loaded_gateway["url"], loaded_gateway["token"], loaded_gateway["served"]
    process = served.process
    outcomes: list[tuple[str, str]] = []  # (kind, outcome)
    lock = threading.Lock()
    stop = threading.Event()

    def record(kind: str, outcome: str) -> None:
        with lock:
            outcomes.append((kind, outcome))

    def sender(number: int) -> None:
        i = 0
        while not stop.is_set():
            stream = (number + i) % 2 == 0
            outcome = one_request(url, token, stream, words=5)
            record("stream" if stream else "plain", outcome)
            i += 1
            if outcome == "refused":
                return

    def long_stream() -> None:  # ~20 s of words: still open when the grace period ends
        record("long", one_request(url, token, True, words=400))

    threads = [threading.Thread(target=long_stream) for _ in range(LONG_STREAMS)]
    threads += [threading.Thread(target=sender, args=(n,)) for n in range(SENDERS)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)  # load running, the long streams started
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    assert process.poll() is None  # still draining: the long streams are open
    assert refuses_connections(loaded_gateway["port"])  # but no new connection is taken
    process.wait(timeout=GRACE + 30)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    assert time.monotonic() - signalled < GRACE + 15
    output = served.output()

    seen = Counter(outcome for _, outcome in outcomes)
    assert seen["broken"] == 0, outcomes
    assert [outcome for kind, outcome in outcomes if kind == "long"] == ["cut"] * LONG_STREAMS, outcomes
    assert seen["ok"] >= 10, outcomes  # a real load was answered (plain and streamed)
    assert {kind for kind, outcome in outcomes if outcome == "ok"} == {"plain", "stream"}
    assert set(seen) <= {"ok", "cut", "refused", "failed"}, outcomes

    import sqlite3

    with sqlite3.connect(loaded_gateway["db"]) as database:
        rows = Counter(database.execute("SELECT status_code, error_type FROM gateway_requestlog").fetchall())
    assert rows[(200, "")] == seen["ok"], (rows, seen, output)
    assert rows[(503, "server_shutting_down")] == seen["cut"], (rows, seen, output)
    assert sum(rows.values()) == seen["ok"] + seen["cut"], (rows, seen, output)
    assert not Path(loaded_gateway["env"]["GATEWAY_LOG_SPOOL_PATH"]).exists()  # all written to the database
