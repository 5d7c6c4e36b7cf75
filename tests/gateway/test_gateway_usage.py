"""manage.py gateway_usage: rebuild reproduces the writer's aggregates, export reports them, prune bounds the raw log."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from gateway.models import RequestLog, Team, UsageDaily
from gateway.usage.log_writer import RequestLogWriter
from tests.gateway.usage.usage_rows import (
    CENT,
    DAY1,
    groups_of_aggregates,
    groups_of_raw_log,
    mixed_rows,
    row,
)

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("gateway_usage", *args, stdout=out)
    return out.getvalue()


def written(rows: list[dict]) -> None:
    test_writer = RequestLogWriter()
    test_writer._queue.extend(rows)
    assert test_writer.flush() == len(rows)


# --- rebuild -----------------------------------------------------------------------------------------------------


def test_rebuild_reproduces_the_aggregates_after_they_are_wiped() -> None:
    written(mixed_rows(300))
    before = groups_of_aggregates()
    UsageDaily.objects.all().delete()
    assert "Rebuilt 2 day(s) (2026-11-30..2026-12-01)" in run("rebuild")
    assert groups_of_aggregates() == before == groups_of_raw_log()


def test_rebuild_of_chosen_days_counts_rows_imported_into_the_raw_log() -> None:
    written(mixed_rows(100))
    imported = [RequestLog(**r) for r in mixed_rows(80, seed=99, start=1000)]  # straight in: no aggregates
    RequestLog.objects.bulk_create(imported)
    assert groups_of_aggregates() != groups_of_raw_log()
    run("rebuild", "--from", "2026-11-30", "--to", "2026-11-30")
    rebuilt, raw = groups_of_aggregates(), groups_of_raw_log()
    assert {k: v for k, v in rebuilt.items() if k[0] == dt.date(2026, 11, 30)} == \
           {k: v for k, v in raw.items() if k[0] == dt.date(2026, 11, 30)}
    assert rebuilt != raw  # the next day was not rebuilt
    run("rebuild", "--from", "2026-12-01")
    assert groups_of_aggregates() == groups_of_raw_log()


def test_rebuild_leaves_days_whose_raw_rows_were_pruned_as_they_are() -> None:
    written([row(1, DAY1 - dt.timedelta(days=40)), row(2, DAY1)])
    RequestLog.objects.filter(request_id="req_1").delete()  # as prune would
    out = run("rebuild", "--from", "2026-01-01")
    assert "left as they are" in out
    assert UsageDaily.objects.filter(day=dt.date(2026, 10, 21), requests=1).exists()


@pytest.mark.parametrize("args", [["rebuild", "--from", "2026-13-01"], ["export", "--from", "x", "--to", "2026-12-01"],
                                  ["export", "--from", "2026-12-02", "--to", "2026-12-01"],
                                  ["export", "--from", "2026-12-01", "--to", "2026-12-01", "--by", "day,colour"]])
def test_bad_dates_and_columns_are_clear_errors(args: list[str]) -> None:
    with pytest.raises(CommandError, match=r"not a date|after --to|unknown column\(s\) colour"):
        run(*args)


# --- export ------------------------------------------------------------------------------------------------------


def test_export_csv_has_every_column_in_order_and_its_totals_equal_the_raw_rows() -> None:
    Team.objects.create(id=1, name="alpha")
    written(mixed_rows(400))
    lines = list(csv.DictReader(io.StringIO(run("export", "--from", "2026-11-30", "--to", "2026-12-01"))))
    assert list(lines[0]) == ["day", "team", "token", "model", "provider", "requests", "errors", "prompt_tokens",
                              "completion_tokens", "cost_usd"]
    raw = list(RequestLog.objects.all())
    assert sum(int(line["requests"]) for line in lines) == len(raw) == 400
    assert sum(int(line["errors"]) for line in lines) == sum(r.status_code >= 400 for r in raw)
    assert sum(int(line["prompt_tokens"]) for line in lines) == sum(r.prompt_tokens for r in raw)
    assert sum(Decimal(line["cost_usd"]) for line in lines) == sum(r.cost for r in raw if r.cost is not None).quantize(CENT)
    assert {line["team"] for line in lines} == {"", "alpha", "#2"}  # team 2 has no Team row: its id
    assert {line["token"] for line in lines} == {"", "token-11", "token-12"}
    assert all(len(line["cost_usd"].split(".")[1]) == 8 for line in lines)
    assert [line["day"] for line in lines] == sorted(line["day"] for line in lines)  # sorted by day first


def test_export_by_a_subset_groups_by_those_columns_only_and_json_has_the_same_keys() -> None:
    written(mixed_rows(200))
    text = run("export", "--from", "2026-11-30", "--to", "2026-12-01", "--by", "model,day", "--format", "csv")
    header, *lines = text.splitlines()
    assert header == "day,model,requests,errors,prompt_tokens,completion_tokens,cost_usd"
    assert [line.split(",")[:2] for line in lines] == [["2026-11-30", "m1"], ["2026-11-30", "m2"],
                                                       ["2026-12-01", "m1"], ["2026-12-01", "m2"]]
    objects = json.loads(run("export", "--from", "2026-11-30", "--to", "2026-12-01", "--by", "provider",
                             "--format", "json"))
    assert [list(o) for o in objects] == [["provider", "requests", "errors", "prompt_tokens", "completion_tokens",
                                           "cost_usd"]] * 2
    assert [o["provider"] for o in objects] == ["p1", "p2"] and sum(o["requests"] for o in objects) == 200
    only_first_day = json.loads(run("export", "--from", "2026-11-30", "--to", "2026-11-30", "--by", "day",
                                    "--format", "json"))
    assert len(only_first_day) == 1 and only_first_day[0]["requests"] == RequestLog.objects.filter(
        created_at__lt=dt.datetime(2026, 12, 1, tzinfo=dt.UTC)).count()
