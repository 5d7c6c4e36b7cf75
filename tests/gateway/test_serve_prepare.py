"""`gateway_serve --prepare-only`: the one-shot step before several instances start (compose.yaml's
`migrate` service) migrates and loads the defaults, then exits without serving."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from gateway.models import ModelEntry


@pytest.mark.django_db
def test_prepare_only_loads_the_defaults_into_an_empty_database_and_does_not_serve(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_exec(path: str, argv: list[str]) -> None:
        raise AssertionError(f"--prepare-only started the server: {argv}")

    monkeypatch.setattr("os.execv", no_exec)
    out = io.StringIO()
    call_command("gateway_serve", "--prepare-only", stdout=out)
    assert "Database is up to date (no migrations to apply)." in out.getvalue() and "First start: loaded the default registry" in out.getvalue()
    assert ModelEntry.objects.exists() and "Gateway starting" not in out.getvalue()
    call_command("gateway_serve", "--prepare-only", stdout=(again := io.StringIO()))
    assert "First start" not in again.getvalue()  # (the instances started after it find it loaded)
