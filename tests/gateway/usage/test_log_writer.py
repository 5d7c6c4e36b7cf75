"""No row can stop the request log, and a flood of failed authentications cannot fill it."""

from __future__ import annotations

import re
import secrets
import time
from collections import Counter

import httpx
import orjson
import pytest
from django.db import DataError, OperationalError

from gateway.models import RequestLog
from gateway.usage import log_writer
from gateway.usage.call import Call
from gateway.usage.log_writer import AUTH_SUMMARY_ERROR_TYPE, RequestLogWriter, writer
from providers.base import ProviderError

SUMMARY = re.compile(r"(\d+) failed authentication attempts were not logged individually since \d\d:\d\d:\d\d( UTC)?")


def chat(setup: dict, content: bytes, headers: dict | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {setup['token']}", "Content-Type": "application/json", **(headers or {})}
    return httpx.post(f"{setup['gateway'].v1}/chat/completions", content=content, headers=headers)


def message(model: str) -> bytes:
    return orjson.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})


# --- rows the database would refuse --------------------------------------------------------------------------------


def test_a_nul_in_the_model_name_is_logged_cleaned_and_so_are_the_requests_after_it(openai_setup: dict, settings) -> None:
    settings.GATEWAY = {"LOG_BODIES": True}
    responses = [
        chat(openai_setup, message("gpt\x00-4o-mini")),  # JSON's \u0000: a NUL in the parsed model name
        chat(openai_setup, rb'{"model": "gpt\ud800", "messages": []}'),  # a lone surrogate, if the parser lets it by
        chat(openai_setup, message("m" * 10_000)),
        chat(openai_setup, b'{"model": "gpt-4o-mini"\x00}'),  # a raw NUL in the body (stored with LOG_BODIES)
        chat(openai_setup, message("gpt-4o-mini"), {"X-Session-ID": ("s\u00e9" * 200).encode("latin-1")}),
    ]
    responses += [chat(openai_setup, message("gpt-4o-mini")) for _ in range(3)]
    assert [r.status_code for r in responses][-3:] == [200, 200, 200]
    openai_setup["gateway"].flush_logs()
    assert writer.pending() == 0
    rows = {row.request_id: row for row in RequestLog.objects.all()}
    assert set(rows) == {r.headers["x-request-id"] for r in responses}
    first = rows[responses[0].headers["x-request-id"]]
    assert first.requested_model == "gpt\ufffd-4o-mini" and "\x00" not in first.error_message
    assert len(rows[responses[2].headers["x-request-id"]].requested_model) == 200
    assert rows[responses[3].headers["x-request-id"]].request_body == '{"model": "gpt-4o-mini"\ufffd}'
    assert rows[responses[4].headers["x-request-id"]].session_id == ("s\u00e9" * 200)[:128]


def raw_rows(count: int) -> list[dict]:
    """Rows as ``Call.row()`` builds them (then altered by the tests, past the cleaning)."""
    return [Call("chat.completions", f"req_{i}").row() for i in range(count)]


@pytest.mark.django_db(transaction=True)
def test_a_row_refused_as_built_is_written_scrubbed_and_the_batch_around_it(caplog) -> None:
    test_writer = RequestLogWriter()
    rows = raw_rows(7)
    rows[1]["session_id"] = "a\x00b"  # refused by PostgreSQL (SQLite stores it)
    rows[2]["status_code"] = -1  # a CHECK constraint on both databases
    rows[4]["requested_model"] = "lone \ud800 surrogate"  # no driver encodes it
    rows[5]["prompt_tokens"] = 2**70  # too large for either database
    test_writer._queue.extend(rows)
    assert test_writer.flush() == 7
    assert test_writer.refused == 0 and test_writer.pending() == 0
    written = {row.request_id: row for row in RequestLog.objects.all()}
    assert sorted(written) == [f"req_{i}" for i in range(7)]
    assert written["req_2"].status_code == 0 and written["req_4"].requested_model == "lone ? surrogate"
    assert written["req_5"].prompt_tokens == 2**31 - 1 and written["req_1"].session_id in ("a?b", "a\x00b")
    assert "req_4" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_row_refused_even_scrubbed_is_dropped_counted_and_logged_and_the_others_written(monkeypatch, caplog) -> None:
    monkeypatch.setattr(log_writer, "scrub_row", lambda row: dict(row))  # the last resort fails too
    test_writer = RequestLogWriter()
    rows = raw_rows(450)  # three batches of 200
    rows[3]["status_code"] = -1
    rows[250]["prompt_tokens"] = 2**70  # out of range for either database
    test_writer._queue.extend(rows)
    assert test_writer.flush() == 448
    assert test_writer.refused == 2 and test_writer.dropped_rows == 2 and test_writer.pending() == 0
    assert test_writer.counters()["refused"] == 2
    assert RequestLog.objects.count() == 448
    assert not RequestLog.objects.filter(request_id__in=["req_3", "req_250"]).exists()
    # (only this writer's records: the live server running in another thread may log errors of its own)
    errors = [r for r in caplog.records if r.levelname == "ERROR" and r.name == log_writer.logger.name
              and ("req_3" in r.getMessage() or "req_250" in r.getMessage())]
    assert len(errors) == 2 and "req_3" in errors[0].getMessage() and "req_250" in errors[1].getMessage()


@pytest.mark.django_db(transaction=True)
def test_the_database_failing_while_a_batch_is_split_keeps_the_rows_not_yet_written(monkeypatch) -> None:
    real_write = log_writer._write
    state = {"down": False, "writes": 0}

    def write(batch):
        if state["down"]:
            raise OperationalError("database is down")
        if any(row["error_type"] == "bad" for row in batch):
            raise DataError("refused")
        real_write(batch)
        state["writes"] += 1
        state["down"] = state["writes"] == 2  # down after two chunks were written

    monkeypatch.setattr(log_writer, "_write", write)
    monkeypatch.setattr(log_writer, "scrub_row", lambda row: dict(row))
    test_writer = RequestLogWriter()
    rows = raw_rows(8)
    rows[6]["error_type"] = "bad"
    test_writer._queue.extend(rows)
    with pytest.raises(OperationalError):
        test_writer.flush()
    assert [r.request_id for r in RequestLog.objects.order_by("request_id")] == [f"req_{i}" for i in range(6)]
    assert [row["request_id"] for row in test_writer._queue] == ["req_6", "req_7"]  # in order, none twice
    state["down"] = False
    assert test_writer.flush() == 1 and test_writer.refused == 1 and test_writer.pending() == 0
    assert RequestLog.objects.count() == 7


@pytest.mark.django_db(transaction=True)
def test_a_database_that_is_down_keeps_the_rows_and_drops_none(monkeypatch) -> None:
    def down(batch):
        raise OperationalError("connection refused")

    monkeypatch.setattr(log_writer, "_write", down)
    test_writer = RequestLogWriter()
    test_writer._queue.extend(raw_rows(5))
    with pytest.raises(OperationalError):
        test_writer.flush()
    assert test_writer.pending() == 5 and test_writer.dropped_rows == 0


# --- failed authentications ----------------------------------------------------------------------------------------


def auth_rows() -> tuple[list[RequestLog], list[RequestLog]]:
    rows = list(RequestLog.objects.filter(status_code=401))
    return ([r for r in rows if r.error_type != AUTH_SUMMARY_ERROR_TYPE],
            [r for r in rows if r.error_type == AUTH_SUMMARY_ERROR_TYPE])


def suppressed_in(summaries: list[RequestLog]) -> int:
    return sum(int(SUMMARY.fullmatch(r.error_message).group(1)) for r in summaries)


def test_a_flood_of_random_tokens_is_logged_as_its_first_rows_and_one_summary_a_minute(openai_setup: dict,
                                                                                       settings) -> None:
    settings.GATEWAY = {"AUTH_FAILURE_LOG_PER_MINUTE": 5}
    gateway = openai_setup["gateway"]
    suppressed_before = writer.suppressed
    started = time.time()
    with httpx.Client() as client:
        codes = Counter(
            client.post(f"{gateway.v1}/chat/completions", content=message("gpt-4o-mini"),
                        headers={"Authorization": f"Bearer sk-{secrets.token_hex(16)}"}).status_code
            for _ in range(120)
        )
        good = client.post(f"{gateway.v1}/chat/completions", content=message("gpt-4o-mini"),
                           headers={"Authorization": f"Bearer {openai_setup['token']}"})
    assert codes == {401: 120} and good.status_code == 200
    gateway.flush_logs()
    individual, summaries = auth_rows()
    minutes = int(time.time() // 60) - int(started // 60) + 1  # the flood spanned this many minutes
    assert len(individual) <= 5 * minutes and len(summaries) <= minutes - 1  # the last minute's is still counting
    gateway.flush_logs(final=True)  # as at shutdown
    individual, summaries = auth_rows()
    assert len(individual) <= 5 * minutes and 1 <= len(summaries) <= minutes
    assert len(individual) + suppressed_in(summaries) == 120
    assert writer.suppressed - suppressed_before == suppressed_in(summaries)
    summary = summaries[-1]
    assert summary.endpoint == "chat.completions" and summary.status_code == 401 and summary.token_id is None
    assert RequestLog.objects.filter(status_code=200).count() == 1  # a valid token is never held back


@pytest.mark.django_db(transaction=True)
def test_the_summary_is_written_when_the_minute_ends_and_at_shutdown(monkeypatch, settings) -> None:
    settings.GATEWAY = {"AUTH_FAILURE_LOG_PER_MINUTE": 3}
    now = [600.0]  # 00:10:00
    monkeypatch.setattr(log_writer, "_clock", lambda: now[0])
    test_writer = RequestLogWriter()

    def fail(count: int, endpoint: str = "chat.completions") -> None:
        for i in range(count):
            call = Call(endpoint, f"req_{endpoint}_{now[0]}_{i}")
            call.fail(ProviderError(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"))
            assert call.auth_failed()
            if test_writer.admit_auth_failure(call):
                test_writer._queue.append(call.row())

    fail(10)
    now[0] += 59
    fail(2, "embeddings")  # same minute: all suppressed, the last one's endpoint is the summary's
    test_writer.close_auth_window()
    assert test_writer.pending() == 3  # the minute has not ended
    now[0] += 1
    test_writer.close_auth_window()
    assert test_writer.pending() == 4 and test_writer.suppressed == 9
    fail(4)  # a new minute: three logged again, one suppressed
    test_writer.stop()  # the summary of an unfinished minute is not lost at shutdown
    individual, summaries = auth_rows()
    assert len(individual) == 6 and len(summaries) == 2 and suppressed_in(summaries) == 10
    assert sorted(s.endpoint for s in summaries) == ["chat.completions", "embeddings"]
    assert test_writer.counters()["suppressed"] == 10


def test_a_401_from_upstream_is_not_an_authentication_failure() -> None:
    from gateway.access.authentication import TokenInfo

    call = Call("chat.completions", "req_up", token=object.__new__(TokenInfo))
    call.fail(ProviderError(401, "upstream said no", "authentication_error"))
    assert not call.auth_failed()
