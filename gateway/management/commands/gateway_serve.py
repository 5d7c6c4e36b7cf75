"""Start the gateway: apply migrations, collect static files (production mode), say what to do next, then
become gunicorn (uvicorn workers)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from gateway.conf import gateway_settings
from gateway.config.file import DEFAULTS, apply, load, registry_is_empty
from gateway.edge import gunicorn_hooks

# After the grace period, the time a worker has to end what still runs and write its log rows (to the
# database, else to the spool file) before gunicorn's master kills it.
SHUTDOWN_WRITE_SECONDS = 15


def metrics_dir() -> str:
    """The directory where the workers will write their metric files, emptied now (GATEWAY_METRICS_DIR,
    else a new temporary directory, which the server removes when it exits)."""
    if not gateway_settings.METRICS_DIR:
        return tempfile.mkdtemp(prefix=gunicorn_hooks.TEMPORARY_PREFIX)
    path = Path(gateway_settings.METRICS_DIR)
    path.mkdir(parents=True, exist_ok=True)
    gunicorn_hooks.clear(path)
    return str(path)


def metrics_argv(path: str) -> list[str]:
    """With the metrics on: each worker writes its counts under ``path`` (prometheus_client's
    multiprocess mode, chosen by the variable when the worker imports it), and the master's hooks
    tidy up after workers that exit (gateway/edge/gunicorn_hooks.py)."""
    return ["--env", f"{gunicorn_hooks.MULTIPROCESS_VARIABLE}={path}",
            "--config", f"python:{gunicorn_hooks.__name__}"]


def gunicorn_argv(bind: str, workers: int, metrics_path: str = "") -> list[str]:
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
        *(metrics_argv(metrics_path) if metrics_path else []),
    ]


class Command(BaseCommand):
    help = "Apply migrations and serve the gateway with gunicorn and uvicorn workers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default=gateway_settings.BIND, help="HOST:PORT (default %(default)s)")
        parser.add_argument("--workers", type=int, default=gateway_settings.WORKERS)
        parser.add_argument("--no-migrate", action="store_true", help="Skip `migrate`.")
        parser.add_argument("--no-defaults", action="store_true",
                            help="Do not load the default registry into an empty database.")
        parser.add_argument("--no-collectstatic", action="store_true",
                            help="Skip `collectstatic` (production mode runs it; e.g. when the image already did).")
        parser.add_argument("--prepare-only", action="store_true",
                            help="Migrate, collect static files and load the defaults, then exit without serving "
                                 "(a one-shot step before several instances start).")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["no_migrate"]:
            self.migrate()
        if getattr(settings, "PRODUCTION", False) and not options["no_collectstatic"]:
            # Production serves STATIC_ROOT's content-hashed copies (settings, "Static files").
            call_command("collectstatic", interactive=False, verbosity=0)
            self.stdout.write(f"Static files collected into {settings.STATIC_ROOT}.")
        if not options["no_defaults"] and registry_is_empty():
            summary = apply(load(DEFAULTS), placeholders=True)
            self.stdout.write(f"First start: loaded the default registry (gateway/config/defaults/{DEFAULTS.name}: "
                              "its provider accounts and models).")
            for note in summary.notes:  # a default account whose required option was not in the environment
                self.stdout.write(f"  Not configured yet (set it in the admin): {note}")
        if options["prepare_only"]:
            return
        self.next_steps(options["bind"])
        sys.stdout.flush()
        argv = gunicorn_argv(options["bind"], options["workers"], metrics_dir() if gateway_settings.METRICS else "")
        os.execv(argv[0], argv)

    def migrate(self) -> None:
        """Apply the migrations not yet applied, and say how many there were."""
        from django.db import connection
        from django.db.migrations.executor import MigrationExecutor

        executor = MigrationExecutor(connection)
        pending = len(executor.migration_plan(executor.loader.graph.leaf_nodes()))
        call_command("migrate", interactive=False, verbosity=0)
        if pending:
            self.stdout.write(f"Database migrated: applied {pending} migration{'s' if pending != 1 else ''}.")
        else:
            self.stdout.write("Database is up to date (no migrations to apply).")

    def next_steps(self, bind: str) -> None:
        from django.contrib.auth import get_user_model

        from gateway.models import ANONYMOUS_DIGEST, ApiToken, ProviderAccount

        url = f"http://{bind}"
        manage = f"{sys.executable} manage.py"
        self.stdout.write(f"Gateway starting on {url} (admin: {url}/admin/, API: {url}/v1)")
        if gateway_settings.ANONYMOUS:
            self.stdout.write("Anonymous access is on (GATEWAY_ANONYMOUS): requests without a token are served as "
                              "'anonymous', within the config file's `anonymous:` limits, to anyone who can reach "
                              f"{bind}.")
        steps = []
        if not get_user_model().objects.filter(is_superuser=True).exists():
            steps.append(f"Create the first admin user:      {manage} createsuperuser")
        if not ProviderAccount.objects.exists():
            steps.append(f"Add a provider and a model:       {url}/admin/  or  {manage} gateway_apply FILE.yaml")
        elif not any(p.is_configured for p in ProviderAccount.objects.filter(active=True)):
            steps.append(f"Add a provider API key:           {url}/admin/gateway/provideraccount/")
        if not ApiToken.objects.exclude(digest=ANONYMOUS_DIGEST).exists():
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
