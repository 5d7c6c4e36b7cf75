"""python manage.py gateway_token create|update|list|revoke: manage API tokens from the command line."""

from __future__ import annotations

from argparse import SUPPRESS, ArgumentParser, ArgumentTypeError
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from gateway.access.windows import PERIODS
from gateway.models import ApiToken, Team

NONE = "none"  # what removes a limit, the team or the expiry in `update`


def _count(value: str) -> int | None:
    if value.lower() == NONE:
        return None
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise ArgumentTypeError(f"expected a whole number >= 0 or '{NONE}', not {value!r}")
    return number


def _usd(value: str) -> Decimal | None:
    if value.lower() == NONE:
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        amount = Decimal(-1)
    if not amount.is_finite() or amount < 0:
        raise ArgumentTypeError(f"expected an amount of USD >= 0 or '{NONE}', not {value!r}")
    return amount


OPTIONS = ("name", "team", "models", "expires_days", *ApiToken.LIMIT_FIELDS)


def _token_options(parser: ArgumentParser, update: bool) -> None:
    """The options create and update share; one not given is absent (``SUPPRESS``): it changes nothing."""
    removable = f" ('{NONE}' removes it)" if update else ""
    add = parser.add_argument
    add("--team", default=SUPPRESS, help=f"Team name (created if missing){removable}.")
    add("--models", default=SUPPRESS, help="Comma-separated model names or patterns; empty: all.")
    add("--expires-days", type=_count, default=SUPPRESS, help=f"Days from now until it expires{removable}.")
    add("--rpm", type=_count, default=SUPPRESS, help=f"Requests per minute{removable}.")
    add("--tpm", type=_count, default=SUPPRESS, help=f"Prompt + completion tokens per minute{removable}.")
    add("--parallel", type=_count, default=SUPPRESS, help=f"Requests in flight at once{removable}.")
    add("--budget", type=_usd, default=SUPPRESS, help=f"Budget in USD per budget period{removable}.")
    add("--budget-period", choices=PERIODS, default=SUPPRESS, help="When the budget starts again (default: total).")


class Command(BaseCommand):
    help = ("Create, update, list or revoke API tokens. `create` prints the raw token alone on its last line "
            "(shown once).")

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a token and print it once.")
        create.add_argument("--name", required=True)
        _token_options(create, update=False)
        update = sub.add_parser("update", help="Change a token's name, team, models, expiry or limits.")
        update.add_argument("token", help="A token name or its display prefix (sk-gw-...).")
        update.add_argument("--name", default=SUPPRESS, help="A new name.")
        _token_options(update, update=True)
        sub.add_parser("list", help="List tokens (prefix, name, team, state, limits, last use).")
        revoke = sub.add_parser("revoke", help="Deactivate tokens by name or display prefix.")
        revoke.add_argument("token", help="A token name or its display prefix (sk-gw-...).")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        getattr(self, f"_{action}")(**options)

    def _apply(self, token: ApiToken, options: dict[str, Any]) -> None:
        """Set the options that were given on the token, and save it (checked as the admin checks it)."""
        given = set(OPTIONS) & set(options)
        if "team" in given:
            team = options["team"]
            token.team = None if team.lower() == NONE else Team.objects.get_or_create(name=team)[0]
        if "models" in given:
            token.allowed_models = options["models"].strip()
        if "expires_days" in given:
            days = options["expires_days"]
            if days == 0:
                raise CommandError("--expires-days must be a positive number of days")
            token.expires_at = None if days is None else timezone.now() + timedelta(days=days)
        for name in ("name", *ApiToken.LIMIT_FIELDS):
            if name in given:
                setattr(token, name, options[name])
        try:
            token.full_clean(exclude=["digest", "prefix"], validate_unique=False)
        except ValidationError as exc:
            raise CommandError("; ".join(f"--{field.replace('_', '-')}: {' '.join(messages)}"
                                         for field, messages in exc.message_dict.items())) from None
        token.save()

    def _create(self, **options: Any) -> None:
        token = ApiToken()
        raw = token.set_new_secret()
        self._apply(token, options)
        self.stderr.write(f"Created token '{token.name}' ({token.prefix}…). Copy it now: it is not shown again.")
        self.stdout.write(raw)

    def _update(self, token: str, **options: Any) -> None:
        found = list(ApiToken.objects.filter(name=token) | ApiToken.objects.filter(prefix=token.removesuffix("…")))
        if not found:
            raise CommandError(f"No token named or prefixed {token!r}")
        if len(found) > 1:
            prefixes = ", ".join(f"{row.prefix}…" for row in found)
            raise CommandError(f"{len(found)} tokens match {token!r} ({prefixes}): give the display prefix")
        row = found[0]
        self._apply(row, options)
        self.stdout.write(f"Updated token '{row.name}' ({row.prefix}…): {row.limits_summary()}.")

    def _list(self, **_: Any) -> None:
        now = timezone.now()
        for token in ApiToken.objects.select_related("team"):
            state = "revoked" if not token.active else "expired" if token.expires_at and token.expires_at <= now else "active"
            used = token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "never"
            team = token.team.name if token.team else "-"
            shown = "(no token)" if token.is_anonymous else f"{token.prefix}…"
            self.stdout.write(f"{shown}  {token.name}  team={team}  {state}  limits: {token.limits_summary()}"
                              f"  last used: {used}")

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
