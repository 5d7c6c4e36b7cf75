"""The request log while the database is away: rows kept in memory up to a bound (then dropped, loudly
and counted in /health), saved to the spool file at shutdown, and written by the next start."""

from __future__ import annotations

import logging
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import OperationalError
from django.test import Client

from gateway.api import views
from gateway.models import RequestLog
from gateway.usage import log_writer, spool
from gateway.usage.log_writer import RequestLogWriter
from tests.gateway.usage.usage_rows import DAY1, row

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def spool_file(tmp_path: Path, settings) -> Path:
    settings.GATEWAY = {"LOG_SPOOL_PATH": str(tmp_path / "spool.jsonl"), "LOG_MAX_QUEUED_ROWS": 10,
                        "OPS_TOKEN": "ops-secret", "LOG_FLUSH_SECONDS": 0.05}
    return tmp_path / "spool.jsonl"


@pytest.fixture
def database_down(monkeypatch: pytest.MonkeyPatch) -> None:
    def down(batch: list) -> None:
        raise OperationalError("could not connect to server: Connection refused")

    monkeypatch.setattr(log_writer, "_write", down)


def rows(count: int) -> list[dict]:
    return [row(i, DAY1, cost=Decimal("0.00012345")) for i in range(count)]


def test_rows_past_the_memory_bound_are_dropped_loudly_and_counted_in_health(
        spool_file: Path, database_down: None, monkeypatch: pytest.MonkeyPatch, caplog, client: Client) -> None:
    test_writer = RequestLogWriter()
    monkeypatch.setattr(views, "writer", test_writer)
    with caplog.at_level(logging.ERROR, logger="gateway.usage.log_writer"):
        for values in rows(15):
            test_writer._append(values)
    assert test_writer.pending() == 10 and test_writer.dropped == 5
    assert "REQUEST LOG ROWS LOST" in caplog.text and "GATEWAY_LOG_MAX_QUEUED_ROWS=10" in caplog.text
    detail = client.get("/health", HTTP_AUTHORIZATION="Bearer ops-secret").json()["log_writer"]
    assert detail == {"queued": 10, "dropped": 5, "max_queued": 10}


def test_rows_unwritten_at_shutdown_go_to_the_spool_and_the_next_start_writes_them(
        spool_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def down(batch: list) -> None:
        raise OperationalError("could not connect to server: Connection refused")

    monkeypatch.setattr(log_writer, "_write", down)
    stopping = RequestLogWriter()
    for values in rows(7):
        stopping.enqueue(values)  # (starts its thread, which fails to write and keeps them)
    stopping.stop()
    assert stopping.pending() == 0 and stopping.spooled == 7 and spool_file.exists()
    assert spool_file.stat().st_mode & 0o777 == 0o600  # rows may hold prompts
    assert RequestLog.objects.count() == 0

    monkeypatch.undo()  # the database is back; the next start
    starting = RequestLogWriter()
    assert starting.replay_spool() == 7 and not spool_file.exists()
    assert starting.flush() == 7
    written = list(RequestLog.objects.order_by("request_id"))
    assert [r.request_id for r in written] == [f"req_{i}" for i in range(7)]
    assert {(r.created_at, r.cost) for r in written} == {(DAY1, Decimal("0.00012345"))}
    assert RequestLogWriter().replay_spool() == 0  # taken once only


def test_a_write_that_hangs_at_shutdown_does_not_hold_the_shutdown_and_its_rows_are_spooled(
        spool_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    entered = threading.Event()

    def hangs(batch: list) -> None:
        entered.set()
        release.wait(30)
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(log_writer, "_write", hangs)
    monkeypatch.setattr(log_writer, "STOP_WAIT_SECONDS", 0.5)
    hanging = RequestLogWriter()
    for values in rows(3):
        hanging.enqueue(values)
    assert entered.wait(10)
    started = time.monotonic()
    hanging.stop()
    assert time.monotonic() - started < 10
    release.set()
    assert len(spool.claim()) == 3


def test_a_spool_line_cut_short_by_a_crash_is_skipped_and_the_others_kept(spool_file: Path, caplog) -> None:
    spool.save(rows(2))
    with open(spool_file, "ab") as handle:
        handle.write(b'{"request_id": "req_cut", "created_')
    with caplog.at_level(logging.ERROR, logger="gateway.usage.spool"):
        assert [r["request_id"] for r in spool.claim()] == ["req_0", "req_1"]
    assert "line 3 does not read back" in caplog.text
