"""python manage.py gateway_apply FILE: create or update teams, providers and models from a YAML/JSON file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway.config.file import DEFAULTS, ConfigError, apply, load


class Command(BaseCommand):
    help = "Apply a YAML or JSON configuration file (teams, providers, models) idempotently; nothing is half-applied."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, nargs="?")
        parser.add_argument("--defaults", action="store_true",
                            help=f"Apply the shipped default registry ({DEFAULTS.name}: the seed's routing).")

    def handle(self, *args: Any, file: Path | None, defaults: bool, **options: Any) -> None:
        if defaults == (file is not None):
            raise CommandError("Give either a FILE or --defaults.")
        file = DEFAULTS if defaults else file
        if not file.is_file():
            raise CommandError(f"{file}: no such file")
        try:
            summary = apply(load(file), placeholders=defaults)  # (the defaults' accounts may await their options)
        except ConfigError as exc:
            raise CommandError(f"{file} was not applied:\n" + "\n".join(f"  {p}" for p in exc.problems)) from exc
        self.stdout.write(str(summary))
