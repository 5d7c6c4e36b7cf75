"""python manage.py gateway_responses prune [--days N]: delete stored Responses API responses older than N days.

The default is GATEWAY_RESPONSES_RETENTION_DAYS (0: keep them until their token deletes them).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway.conf import gateway_settings
from gateway.responses import store


class Command(BaseCommand):
    help = "Stored Responses API responses (previous_response_id, GET /v1/responses/{id}): prune old ones."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="prune")
        prune = actions.add_parser("prune", help="Delete stored responses older than the retention.")
        prune.add_argument("--days", type=int, help="Keep this many days (default GATEWAY_RESPONSES_RETENTION_DAYS).")

    def handle(self, *args: Any, action: str, days: int | None = None, **options: Any) -> None:
        if days is None:
            days = gateway_settings.RESPONSES_RETENTION_DAYS
            if not days:
                self.stdout.write("GATEWAY_RESPONSES_RETENTION_DAYS is 0 (keep everything) and no --days: "
                                  "nothing pruned.")
                return
        if days < 0:
            raise CommandError("--days must be 0 or more")
        deleted = store.prune(days)
        self.stdout.write(f"Deleted {deleted} stored response(s) older than {days} day(s).")
