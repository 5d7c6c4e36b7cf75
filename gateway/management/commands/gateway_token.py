"""python manage.py gateway_token create|list|revoke: manage API tokens from the command line."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from gateway.models import ApiToken, Team


class Command(BaseCommand):
    help = "Create, list or revoke API tokens. `create` prints the raw token alone on its last line (shown once)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a token and print it once.")
        create.add_argument("--name", required=True)
        create.add_argument("--team", help="Team name (created if missing).")
        create.add_argument("--models", default="", help="Comma-separated model names or patterns; empty: all.")
        create.add_argument("--expires-days", type=int, help="Days until the token expires; default: never.")
        sub.add_parser("list", help="List tokens (prefix, name, team, state, last use).")
        revoke = sub.add_parser("revoke", help="Deactivate tokens by name or display prefix.")
        revoke.add_argument("token", help="A token name or its display prefix (sk-gw-...).")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        getattr(self, f"_{action}")(**options)

    def _create(self, name: str, team: str | None, models: str, expires_days: int | None, **_: Any) -> None:
        if expires_days is not None and expires_days <= 0:
            raise CommandError("--expires-days must be a positive number of days")
        token = ApiToken(name=name, allowed_models=models.strip())
        if team:
            token.team = Team.objects.get_or_create(name=team)[0]
        if expires_days:
            token.expires_at = timezone.now() + timedelta(days=expires_days)
        raw = token.set_new_secret()
        token.save()
        self.stderr.write(f"Created token '{name}' ({token.prefix}…). Copy it now: it is not shown again.")
        self.stdout.write(raw)

    def _list(self, **_: Any) -> None:
        now = timezone.now()
        for token in ApiToken.objects.select_related("team"):
            state = "revoked" if not token.active else "expired" if token.expires_at and token.expires_at <= now else "active"
            used = token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "never"
            team = token.team.name if token.team else "-"
            self.stdout.write(f"{token.prefix}…  {token.name}  team={team}  {state}  last used: {used}")

    def _revoke(self, token: str, **_: Any) -> None:
        found = ApiToken.objects.filter(name=token) | ApiToken.objects.filter(prefix=token.removesuffix("…"))
        count = 0
        for row in found.filter(active=True):
            row.active = False
            row.save(update_fields=["active"])
            count += 1
        if not count:
            raise CommandError(f"No active token named or prefixed {token!r}")
        self.stdout.write(f"Revoked {count} token(s).")
