"""Start the gateway: apply migrations, say what to do next, then become gunicorn (uvicorn workers)."""

from __future__ import annotations

import os
import sys
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from gateway.conf import gateway_settings
from gateway.config.file import DEFAULTS, apply, load, registry_is_empty

# After the grace period, the time a worker has to end what still runs and write its log rows (to the
# database, else to the spool file) before gunicorn's master kills it.
SHUTDOWN_WRITE_SECONDS = 15


def gunicorn_argv(bind: str, workers: int) -> list[str]:
    """The gunicorn command line; each setting is the one measured in bench/ (see README)."""
    config = gateway_settings
    return [
        sys.executable, "-m", "gunicorn", "proxy_site.asgi:application",
        "--worker-class", "gateway.edge.worker.GatewayWorker",  # access log only with DEBUG, tokens redacted
        "--workers", str(workers),
        "--bind", bind,
        "--backlog", str(config.BACKLOG),
        "--keep-alive", str(config.KEEPALIVE_SECONDS),
        "--graceful-timeout", str(config.GRACEFUL_TIMEOUT + SHUTDOWN_WRITE_SECONDS),  # (the workers cut at GRACEFUL_TIMEOUT)
        "--timeout", "0",  # async workers heartbeat on their own; long streams are normal
        *(["--access-logfile", "-"] if settings.DEBUG else []),
        "--log-level", "warning",
    ]


class Command(BaseCommand):
    help = "Apply migrations and serve the gateway with gunicorn and uvicorn workers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default=gateway_settings.BIND, help="HOST:PORT (default %(default)s)")
        parser.add_argument("--workers", type=int, default=gateway_settings.WORKERS)
        parser.add_argument("--no-migrate", action="store_true", help="Skip `migrate`.")
        parser.add_argument("--no-defaults", action="store_true",
                            help="Do not load the default registry into an empty database.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["no_migrate"]:
            call_command("migrate", interactive=False, verbosity=0)
            self.stdout.write("Database is up to date.")
        if not options["no_defaults"] and registry_is_empty():
            apply(load(DEFAULTS))
            self.stdout.write(f"First start: loaded the default registry (gateway/config/defaults/{DEFAULTS.name}: "
                              "its provider accounts and models).")
        self.next_steps(options["bind"])
        sys.stdout.flush()
        argv = gunicorn_argv(options["bind"], options["workers"])
        os.execv(argv[0], argv)

    def next_steps(self, bind: str) -> None:
        from django.contrib.auth import get_user_model

        from gateway.models import ApiToken, ProviderAccount

        url = f"http://{bind}"
        manage = f"{sys.executable} manage.py"
        self.stdout.write(f"Gateway starting on {url} (admin: {url}/admin/, API: {url}/v1)")
        steps = []
        if not get_user_model().objects.filter(is_superuser=True).exists():
            steps.append(f"Create the first admin user:      {manage} createsuperuser")
        if not ProviderAccount.objects.exists():
            steps.append(f"Add a provider and a model:       {url}/admin/  or  {manage} gateway_apply FILE.yaml")
        elif not any(p.is_configured for p in ProviderAccount.objects.filter(active=True)):
            steps.append(f"Add a provider API key:           {url}/admin/gateway/provideraccount/")
        if not ApiToken.objects.exists():
            steps.append(f"Issue an API token:               {manage} gateway_token create --name my-app")
        host = bind.rpartition(":")[0].strip("[]")
        loopback_only = set(settings.ALLOWED_HOSTS) <= set(getattr(settings, "LOOPBACK_HOSTS", ()))
        if host not in ("127.0.0.1", "localhost", "::1") and loopback_only:
            steps.append(f"Listening on {host}, but only loopback host names are accepted: set DJANGO_ALLOWED_HOSTS "
                         "(and, for production, DJANGO_DEBUG=false: see README, Modes)")
        if steps:
            self.stdout.write("Next steps (in another terminal, from this directory):")
            for step in steps:
                self.stdout.write(f"  - {step}")
