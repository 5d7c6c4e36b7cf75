"""Pruning deletes only the raw log rows older than the retention, in batches; the daily aggregates stay."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from gateway.models import RequestLog, UsageDaily
from gateway.usage import retention
from gateway.usage.log_writer import RequestLogWriter
from tests.gateway.usage.usage_rows import groups_of_aggregates, row

pytestmark = pytest.mark.django_db(transaction=True)


def aged(days: int, count: int, start: int) -> list[dict]:
    when = timezone.now() - dt.timedelta(days=days)
    return [row(start + i, when) for i in range(count)]


def test_prune_deletes_only_rows_older_than_the_retention_in_batches_and_the_aggregates_stay() -> None:
    test_writer = RequestLogWriter()
    test_writer._queue.extend(aged(40, 23, 0) + aged(31, 4, 100) + aged(29, 3, 200) + aged(0, 2, 300))
    test_writer.flush()
    aggregates = groups_of_aggregates()
    with CaptureQueriesContext(connection) as queries:
        assert retention.prune(30, batch_size=10) == 27
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 3  # 10 + 10 + 7
    assert RequestLog.objects.count() == 5
    assert all(r.created_at >= retention.prune_cutoff(30) for r in RequestLog.objects.all())
    assert groups_of_aggregates() == aggregates and sum(UsageDaily.objects.values_list("requests", flat=True)) == 32


def test_prune_keeps_whole_days_the_day_before_the_cutoff_goes_entirely() -> None:
    cutoff = retention.prune_cutoff(7)
    assert cutoff == timezone.localtime(cutoff).replace(hour=0, minute=0, second=0, microsecond=0)
    assert (timezone.localdate() - timezone.localtime(cutoff).date()).days == 7


def test_the_command_prunes_with_the_configured_retention_and_keeps_all_when_it_is_zero(settings) -> None:
    RequestLog.objects.bulk_create([RequestLog(**r) for r in aged(100, 3, 0) + aged(1, 2, 10)])
    out = io.StringIO()
    call_command("gateway_usage", "prune", stdout=out)
    assert "nothing pruned" in out.getvalue() and RequestLog.objects.count() == 5
    settings.GATEWAY = {"LOG_RETENTION_DAYS": 30}
    call_command("gateway_usage", "prune", "--batch-size", "2", stdout=out)
    assert "Deleted 3 request log row(s)" in out.getvalue() and RequestLog.objects.count() == 2
    call_command("gateway_usage", "prune", "--days", "0", stdout=out)
    assert RequestLog.objects.count() == 0
