"""The hot path's promises: no database query per request once warm, logs written in batches, none lost."""

from __future__ import annotations

import threading

import httpx
import pytest
from django.db import DatabaseError
from django.db.backends.utils import CursorWrapper

from gateway.models import ApiToken, RequestLog
from gateway.usage.call import Call
from gateway.usage.log_writer import RequestLogWriter


@pytest.fixture
def query_counter(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """SQL run by any thread except the log writer's (it is off the request path by design)."""
    seen: list[str] = []
    original = CursorWrapper._execute_with_wrappers

    def counting(self, sql, *args, **kwargs):
        if threading.current_thread().name != "request-log-writer":
            seen.append(sql)
        return original(self, sql, *args, **kwargs)

    monkeypatch.setattr(CursorWrapper, "_execute_with_wrappers", counting)
    return seen


def test_no_database_query_per_request_once_token_and_routes_are_cached(openai_setup: dict, query_counter) -> None:
    url = f"{openai_setup['gateway'].v1}/chat/completions"
    headers = {"Authorization": f"Bearer {openai_setup['token']}"}
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(headers=headers) as client:
        assert client.post(url, json=body).status_code == 200  # warms the token and registry caches
        query_counter.clear()
        for stream in [False, True] * 10:
            assert client.post(url, json={**body, "stream": stream}).status_code == 200
    assert query_counter == []


@pytest.mark.django_db(transaction=True)
def test_writer_keeps_rows_when_the_database_fails_and_writes_them_later(monkeypatch: pytest.MonkeyPatch) -> None:
    writer = RequestLogWriter()
    for i in range(3):
        writer._queue.append(Call("chat.completions", f"req_{i}").row())
    from gateway.usage import log_writer as request_log

    real_write = request_log._write

    def failing(batch):
        raise DatabaseError("database is down")

    monkeypatch.setattr(request_log, "_write", failing)
    with pytest.raises(DatabaseError):
        writer.flush()
    assert writer.pending() == 3 and RequestLog.objects.count() == 0
    monkeypatch.setattr(request_log, "_write", real_write)
    assert writer.flush() == 3
    assert sorted(RequestLog.objects.values_list("request_id", flat=True)) == ["req_0", "req_1", "req_2"]


@pytest.mark.django_db(transaction=True)
def test_writer_flushes_in_batches_and_on_stop(settings) -> None:
    settings.GATEWAY = {"LOG_BATCH_SIZE": 2, "LOG_FLUSH_SECONDS": 60}
    writer = RequestLogWriter()
    for i in range(5):
        writer.enqueue(Call("chat.completions", f"req_{i}").row())
    writer.stop()
    assert writer.pending() == 0 and RequestLog.objects.count() == 5


@pytest.mark.django_db(transaction=True)
def test_a_row_locked_elsewhere_does_not_stall_the_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL: an admin's open transaction on a token row makes the batch give up and retry later."""
    import psycopg
    from django.db import connection

    from gateway.usage import log_writer as request_log
    from tests.conftest import make_token

    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers with its busy timeout instead")
    make_token("locked")
    token = ApiToken.objects.get(name="locked")
    monkeypatch.setattr(request_log, "LOCK_TIMEOUT_SECONDS", 0.2)
    settings = connection.settings_dict
    other = psycopg.connect(dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"],
                            port=settings["PORT"] or None, password=settings["PASSWORD"] or None)
    other.execute("UPDATE gateway_apitoken SET active = active WHERE id = %s", [token.id])  # holds the row lock
    writer = RequestLogWriter()
    writer._queue.append({**Call("chat.completions", "req_locked").row(), "token_id": token.id})
    try:
        with pytest.raises(DatabaseError):
            writer.flush()
        assert writer.pending() == 1
    finally:
        other.rollback()
        other.close()
    assert writer.flush() == 1 and RequestLog.objects.filter(request_id="req_locked").exists()
