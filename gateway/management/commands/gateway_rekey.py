"""python manage.py gateway_rekey: re-encrypt every stored provider key under the first of GATEWAY_ENCRYPTION_KEYS.

Key rotation (SECURITY.md): put the new key first in GATEWAY_ENCRYPTION_KEYS and keep the old one
after it, restart, run this, then drop the old key. Idempotent: a key already under the first key
is left as it is. A stored key that none of the configured keys opens is listed and left untouched;
by default nothing at all is changed then (one transaction), so the command can be run again once
the missing key has been added.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from gateway import crypto
from gateway.models import ProviderAccount


class Command(BaseCommand):
    help = "Re-encrypt every stored provider API key under the first of GATEWAY_ENCRYPTION_KEYS."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--skip-undecryptable", action="store_true",
                            help="Re-encrypt the keys that can be decrypted even if some cannot (those are "
                                 "left untouched); by default nothing is changed then.")
        parser.add_argument("--dry-run", action="store_true", help="Report what would change; change nothing.")

    def handle(self, *args: Any, skip_undecryptable: bool, dry_run: bool, **options: Any) -> None:
        with transaction.atomic():
            accounts = list(ProviderAccount.objects.select_for_update().exclude(api_key_encrypted="").order_by("name"))
            current, stale, unreadable = [], [], []
            for account in accounts:
                if crypto.is_current(account.api_key_encrypted):
                    current.append(account)
                elif crypto.decrypt_or_none(account.api_key_encrypted) is not None:
                    stale.append(account)
                else:
                    unreadable.append(account)
            for account in unreadable:
                self.stderr.write(f"cannot decrypt the stored key of provider account {account.name!r} "
                                  f"(id {account.pk}): left untouched")
            if unreadable and not skip_undecryptable:
                raise CommandError(
                    f"{len(unreadable)} stored key(s) cannot be decrypted with any of GATEWAY_ENCRYPTION_KEYS; "
                    "nothing was changed. Add the key they were encrypted with to GATEWAY_ENCRYPTION_KEYS, "
                    "enter those API keys again in the admin, or run with --skip-undecryptable.")
            if not dry_run:
                for account in stale:
                    account.api_key_encrypted = crypto.rotate(account.api_key_encrypted)
                    account.save(update_fields=["api_key_encrypted"])
        verb = "would be re-encrypted" if dry_run else "re-encrypted"
        self.stdout.write(f"{len(stale)} provider key(s) {verb} under the first key; {len(current)} already were; "
                          f"{len(unreadable)} cannot be decrypted.")
