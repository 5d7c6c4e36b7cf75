"""The request-log writer keeps UsageDaily equal to the GROUP BY of the raw rows it writes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from gateway.models import RequestLog, Team, UsageDaily
from gateway.usage import log_writer
from gateway.usage.log_writer import RequestLogWriter
from tests.gateway.usage.usage_rows import (
    DAY1,
    DAY2,
    groups_of_aggregates,
    groups_of_raw_log,
    mixed_rows,
    row,
    sums,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_aggregates_equal_the_group_by_of_the_raw_rows_after_many_mixed_batches(settings) -> None:
    Team.objects.create(id=1, name="alpha")
    Team.objects.create(id=2, name="beta")
    test_writer = RequestLogWriter()
    for size, (start, count) in zip([1, 37, 200, 64], [(0, 5), (5, 300), (305, 450), (755, 100)], strict=True):
        settings.GATEWAY = {"LOG_BATCH_SIZE": size}
        test_writer._queue.extend(mixed_rows(count, seed=start, start=start))
        assert test_writer.flush() == count
    expected = groups_of_raw_log()
    assert groups_of_aggregates() == expected
    assert {key[0] for key in expected} == {dt.date(2026, 11, 30), dt.date(2026, 12, 1)}
    assert {key[1] for key in expected} == {0, 1, 2} and {key[2] for key in expected} == {0, 11, 12}
    assert sum(g[5] for g in expected.values()) > 0  # some of unknown cost
    assert sum(u.requests for u in UsageDaily.objects.all()) == RequestLog.objects.count() == 855
    assert set(UsageDaily.objects.filter(team_id=1).values_list("team_name", flat=True)) == {"alpha"}
    assert set(UsageDaily.objects.filter(token_id=12).values_list("token_name", flat=True)) == {"token-12"}


def test_one_key_sums_requests_errors_tokens_known_costs_and_counts_unknown_costs() -> None:
    test_writer = RequestLogWriter()
    test_writer._queue.extend([
        row(1, DAY1, team=1, token=11, cost=Decimal("0.25")),
        row(2, DAY1, team=1, token=11, status=500, prompt=3, completion=0, cost=Decimal("0.5")),
        row(3, DAY1, team=1, token=11, cost=None),
        row(4, DAY2, team=1, token=11, cost=Decimal("1")),  # the next day: another key
    ])
    test_writer.flush()
    assert groups_of_aggregates() == {
        (dt.date(2026, 11, 30), 1, 11, "m1", "p1"): sums(3, 1, 23, 10, Decimal("0.75"), 1),
        (dt.date(2026, 12, 1), 1, 11, "m1", "p1"): sums(1, 0, 10, 5, Decimal("1"), 0),
    }


def test_the_day_is_taken_in_the_settings_time_zone(settings) -> None:
    settings.TIME_ZONE = "America/New_York"
    test_writer = RequestLogWriter()
    test_writer._queue.extend([row(1, DAY2 + dt.timedelta(hours=3)), row(2, DAY2 + dt.timedelta(hours=6))])
    test_writer.flush()
    assert sorted(UsageDaily.objects.values_list("day", "requests")) == [(dt.date(2026, 11, 30), 1),
                                                                        (dt.date(2026, 12, 1), 1)]


def test_a_row_the_database_refuses_is_not_aggregated_and_the_rest_of_its_batch_is(monkeypatch) -> None:
    monkeypatch.setattr(log_writer, "scrub_row", lambda r: dict(r))  # refused even scrubbed: dropped
    test_writer = RequestLogWriter()
    rows = mixed_rows(50)
    rows[17]["status_code"] = -1  # a CHECK constraint on both databases
    rows[33]["prompt_tokens"] = 2**70  # out of range for either database
    test_writer._queue.extend(rows)
    assert test_writer.flush() == 48 and test_writer.refused == 2
    assert groups_of_aggregates() == groups_of_raw_log()
    assert sum(UsageDaily.objects.values_list("requests", flat=True)) == 48


def test_a_failed_batch_leaves_no_aggregates_and_its_retry_counts_once(monkeypatch) -> None:
    from django.db import OperationalError

    real_add = log_writer.daily.add
    state = {"fail": True}

    def add(cursor, groups):
        real_add(cursor, groups)
        if state["fail"]:
            raise OperationalError("connection lost after the upsert")

    monkeypatch.setattr(log_writer.daily, "add", add)
    test_writer = RequestLogWriter()
    test_writer._queue.extend(mixed_rows(20))
    with pytest.raises(OperationalError):
        test_writer.flush()
    assert not UsageDaily.objects.exists() and not RequestLog.objects.exists() and test_writer.pending() == 20
    state["fail"] = False
    assert test_writer.flush() == 20
    assert groups_of_aggregates() == groups_of_raw_log()
