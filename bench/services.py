"""The processes and the throwaway database a bench run needs, and their cleanup."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_http(url: str, seconds: float, process: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 200; fail early if ``process`` exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError), \
                urllib.request.urlopen(url, timeout=1) as response:
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f} s")


@dataclass
class Database:
    """DATABASE_URL (and REDIS_URL) for the gateway, plus how to drop what was created."""

    url: str
    label: str
    redis_url: str = ""
    _drop: tuple[str, str] | None = None  # (admin URL, database name) of a Postgres database we created

    @classmethod
    def sqlite(cls, directory: Path) -> Database:
        return cls(f"sqlite:///{directory / 'bench.sqlite3'}", "SQLite (temp file)")

    @classmethod
    def postgres(cls, admin_url: str, directory: Path) -> Database:
        """A fresh database on the server of ``admin_url``, or SQLite (with a note) if that fails."""
        import psycopg

        name = f"gateway_bench_{os.getpid()}"
        try:
            with psycopg.connect(_libpq(admin_url), autocommit=True, connect_timeout=3) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
                conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.Error as exc:
            print(f"! Postgres at {admin_url} is not usable ({exc}); using SQLite instead.", file=sys.stderr)
            return cls.sqlite(directory)
        base = admin_url.rsplit("/", 1)[0]
        return cls(f"{base}/{name}", f"Postgres ({name}, dropped afterwards)", _drop=(admin_url, name))

    def use_redis(self, url: str) -> None:
        host_port = url.split("//", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
        host, _, port = host_port.partition(":")
        if reachable(host or "127.0.0.1", int(port or 6379)):
            self.redis_url = url
            self.label += f" + Redis ({url})"
        else:
            print(f"! Redis at {url} is not reachable; running without Redis.", file=sys.stderr)

    def drop(self) -> None:
        if self._drop is None:
            return
        import psycopg

        admin_url, name = self._drop
        with psycopg.connect(_libpq(admin_url), autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._drop = None


def _libpq(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


@dataclass
class Services:
    """Starts child processes in their own process groups and stops all of them on ``close``."""

    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    processes: list[subprocess.Popen] = field(default_factory=list)
    database: Database | None = None  # dropped by the caller after close()

    def gateway_env(self, database: Database) -> dict[str, str]:
        env = {**os.environ, "DATABASE_URL": database.url, "DJANGO_SETTINGS_MODULE": "proxy_site.settings",
               "DJANGO_SECRET_KEY": "bench-only-secret-key-not-for-production-use-0123456789",
               # production settings, as behind a TLS-terminating proxy: plain HTTP on loopback is the bench's
               "DJANGO_DEBUG": "false", "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
               "DJANGO_SECURE_SSL_REDIRECT": "false", "GATEWAY_LOG_LEVEL": "WARNING",
               # room for 2,000+ concurrent upstream streams per worker
               "GATEWAY_UPSTREAM_MAX_CONNECTIONS": "4096", "GATEWAY_UPSTREAM_MAX_PER_HOST": "4096",
               "GATEWAY_BACKLOG": "4096", "PYTHONUNBUFFERED": "1"}
        if database.redis_url:
            env["REDIS_URL"] = database.redis_url
        else:
            env.pop("REDIS_URL", None)
        return {**env, **self.env}

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = (self.workdir / f"{name}.log").open("ab")
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.processes.append(process)
        return process

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def manage(self, env: dict[str, str], *args: str) -> str:
        """Run ``manage.py ARGS``; its stdout, or an error with its output."""
        done = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def start_mock(self, port: int, chunks: int, delay_ms: float) -> str:
        process = self.start("mock", [PYTHON, "bench/mock_upstream.py", "--port", str(port),
                                      "--chunks", str(chunks), "--delay-ms", str(delay_ms)])
        base = f"http://127.0.0.1:{port}/v1"
        wait_http(f"{base}/models", 10, process)
        return base

    def configure_gateway(self, env: dict[str, str], mock_base: str) -> str:
        """Migrate, point the gateway at the mock, and return a fresh token."""
        self.manage(env, "migrate", "--noinput")
        config = self.workdir / "gateway.yaml"
        config.write_text(
            "providers:\n"
            f"  - {{name: mock, kind: openai_compatible, base_url: '{mock_base}', api_key: bench-key}}\n"
            "models:\n"
            # Priced, so a budget is really spent; the prices of a small model.
            "  - {name: bench-model, input_price_per_million: '0.15', output_price_per_million: '0.6',\n"
            "     max_output_tokens: 256, deployments: [{provider: mock, model: bench-model}]}\n"
        )
        self.manage(env, "gateway_apply", str(config))
        return self.create_token(env, "bench")

    def create_token(self, env: dict[str, str], name: str, *options: str) -> str:
        """A fresh token (``options``: gateway_token create's limit flags)."""
        output = self.manage(env, "gateway_token", "create", "--name", name, *options)
        token = next((line for line in reversed([line.strip() for line in output.splitlines()]) if line), "")
        if not token:
            raise RuntimeError("`manage.py gateway_token create` printed no token")
        return token

    def start_gateway(self, env: dict[str, str], port: int, workers: int) -> subprocess.Popen:
        process = self.start("gateway", [PYTHON, "manage.py", "gateway_serve", "--bind", f"127.0.0.1:{port}",
                                         "--workers", str(workers), "--no-migrate"], env)
        try:
            wait_http(f"http://127.0.0.1:{port}/health", 60, process)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n--- gateway log ---\n{self.log_tail('gateway')}") from exc
        return process

    def close(self) -> None:
        """SIGTERM each process group we started, then SIGKILL what is left after a grace period."""
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # stray children of the group, if any
            process.wait()
        self.processes.clear()
