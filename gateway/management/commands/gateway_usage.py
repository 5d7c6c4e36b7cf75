"""python manage.py gateway_usage rebuild|export|prune: the daily usage aggregates and the raw log's growth.

  rebuild [--from DATE] [--to DATE]   recompute UsageDaily for those days (inclusive) from the raw log
  export --from DATE --to DATE [--by day,team,token,model,provider] [--format csv|json]
                                      the usage report, read from UsageDaily
  prune [--days N] [--batch-size N]   delete raw log rows older than N days (GATEWAY_LOG_RETENTION_DAYS)
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway.conf import gateway_settings
from gateway.usage import daily, report, retention


def _date(option: str, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option} {value!r}: not a date (use YYYY-MM-DD)") from None


def _range(first: dt.date | None, last: dt.date | None) -> None:
    if first and last and first > last:
        raise CommandError(f"--from {first} is after --to {last}")


class Command(BaseCommand):
    help = "Daily usage aggregates (rebuild, export) and the raw request log's growth (prune)."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="rebuild|export|prune")
        rebuild = actions.add_parser("rebuild", help="Recompute the daily aggregates of some days from the raw log.")
        rebuild.add_argument("--from", dest="first", help="First day (YYYY-MM-DD); default: the raw log's first.")
        rebuild.add_argument("--to", dest="last", help="Last day, included; default: the raw log's last.")
        export = actions.add_parser("export", help="The usage report (CSV or JSON on standard output).")
        export.add_argument("--from", dest="first", required=True, help="First day (YYYY-MM-DD).")
        export.add_argument("--to", dest="last", required=True, help="Last day, included.")
        export.add_argument("--by", default=",".join(report.DIMENSIONS),
                            help=f"Columns to group by, comma-separated (default {','.join(report.DIMENSIONS)}).")
        export.add_argument("--format", choices=["csv", "json"], default="csv")
        prune = actions.add_parser("prune", help="Delete raw log rows older than the retention (aggregates stay).")
        prune.add_argument("--days", type=int, help="Keep this many days before today (default "
                                                     "GATEWAY_LOG_RETENTION_DAYS; 0 there: keep everything).")
        prune.add_argument("--batch-size", type=int, default=retention.PRUNE_BATCH_SIZE,
                           help="Rows deleted per transaction.")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        getattr(self, f"_{action}")(**options)

    def _rebuild(self, first: str | None, last: str | None, **options: Any) -> None:
        start, end = _date("--from", first), _date("--to", last)
        _range(start, end)
        bounds = daily.raw_days()
        if bounds is None:
            self.stdout.write("The raw request log is empty: nothing rebuilt.")
            return
        if start is not None and start < bounds[0]:
            # Older days' raw rows were pruned: their aggregates are all that is left of them.
            self.stdout.write(f"Days before {bounds[0]} (the raw log's first) are left as they are.")
        start = max(start or bounds[0], bounds[0])
        end = end or bounds[1]
        if start > end:
            self.stdout.write("No raw log rows in those days: nothing rebuilt.")
            return
        days, rows = daily.rebuild(start, end)
        self.stdout.write(f"Rebuilt {days} day(s) ({start}..{end}): {rows} aggregate row(s).")

    def _export(self, first: str, last: str, by: str, format: str, **options: Any) -> None:
        start, end = _date("--from", first), _date("--to", last)
        _range(start, end)
        columns = tuple(c.strip() for c in by.split(",") if c.strip())
        if not columns:
            raise CommandError(f"--by: choose among {','.join(report.DIMENSIONS)}")
        try:
            rows = report.usage_report(start, end, columns)
        except ValueError as exc:
            raise CommandError(f"--by: {exc}") from None
        if format == "json":
            self.stdout.write(json.dumps(rows, indent=2))
            return
        out = io.StringIO()
        names = [c for c in report.COLUMNS if c in columns or c not in report.DIMENSIONS]
        writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        self.stdout.write(out.getvalue(), ending="")

    def _prune(self, days: int | None, batch_size: int, **options: Any) -> None:
        if days is None:
            days = gateway_settings.LOG_RETENTION_DAYS
            if not days:
                self.stdout.write("GATEWAY_LOG_RETENTION_DAYS is 0 (keep everything) and no --days: nothing pruned.")
                return
        if days < 0 or batch_size < 1:
            raise CommandError("--days must be 0 or more and --batch-size 1 or more")
        cutoff = retention.prune_cutoff(days)
        deleted = retention.prune(days, batch_size)
        self.stdout.write(f"Deleted {deleted} request log row(s) from before {cutoff:%Y-%m-%d %H:%M %Z}; "
                          "the daily aggregates are kept.")
