"""The production server (``manage.py gateway_serve``: gunicorn's master and its uvicorn workers) in a
subprocess of the test, on a free port: started, waited for until /health answers, and stopped."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A port nothing listens on now (the kernel's pick; free until something binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env: Mapping[str, str], *args: str) -> str:
    """Run ``manage.py`` with these arguments in this environment; its stdout (it must succeed)."""
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def sqlite_gateway(tmp_path: Path, upstream_url: str, token_name: str, priced: bool = True,
                   **settings: str) -> tuple[dict[str, str], str]:
    """A fresh SQLite database for a served gateway: migrated, the fake OpenAI upstream behind
    gpt-4o-mini (at gpt-4o-mini's prices unless ``priced`` is false) and one token; no Redis. The
    environment (this one, with ``settings`` on top) and the token's secret."""
    import os

    from tests.conftest import UPSTREAM_KEY

    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/gateway.sqlite3", **settings}
    env.pop("REDIS_URL", None)
    prices = "    input_price_per_million: 0.15\n    output_price_per_million: 0.60\n" if priced else ""
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "providers:\n"
        f"  - {{name: fake-openai, kind: openai, base_url: '{upstream_url}', api_key: '${{FAKE_KEY}}'}}\n"
        "models:\n"
        "  - name: gpt-4o-mini\n"
        "    deployments: [{provider: fake-openai, model: gpt-4o-mini}]\n" + prices
    )
    manage(env, "migrate", "--noinput")
    manage({**env, "FAKE_KEY": UPSTREAM_KEY}, "gateway_apply", str(config))
    token = manage(env, "gateway_token", "create", "--name", token_name).strip().splitlines()[-1]
    return env, token


class ServedGateway:
    """``gateway_serve --bind 127.0.0.1:<free port> --workers N [extra args]`` in the environment given.

    ``with ServedGateway(env) as served:`` starts it and waits for /health to answer 200 (an error with
    the server's output if it exits or does not answer within ``start_timeout``); leaving the block
    stops it (SIGTERM, then a kill if it has not ended within ``stop_timeout``). ``launch()`` and
    ``wait_healthy()`` start several at once; ``process`` is gunicorn's master, for a test to signal.
    Its stdout and stderr are read all along (a full pipe would block the server): ``output()``."""

    def __init__(self, env: Mapping[str, str], workers: int = 1, args: Sequence[str] = (),
                 health_headers: Mapping[str, str] | None = None, start_timeout: float = 60,
                 stop_timeout: float = 30) -> None:
        self.env = dict(env)
        self.workers = workers
        self.args = list(args)
        self.health_headers = dict(health_headers or {})
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[str] | None = None
        self._output: list[str] = []
        self._reader: threading.Thread | None = None

    @property
    def process(self) -> subprocess.Popen[str]:
        assert self._process is not None, "the server was not launched"
        return self._process

    def launch(self) -> ServedGateway:
        """Start the server; it answers once ``wait_healthy`` returns."""
        self._process = subprocess.Popen(
            [sys.executable, "manage.py", "gateway_serve", "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(self.workers), *self.args],
            cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, args=(self._process,), daemon=True)
        self._reader.start()
        return self

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._output.append(line)

    def wait_healthy(self) -> ServedGateway:
        """Wait until /health answers 200; if the server exits first or the time runs out, stop it and
        fail with what it printed."""
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                if httpx.get(f"{self.url}/health", headers=self.health_headers, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                why = (f"exited with code {self.process.returncode}" if self.process.poll() is not None
                       else f"did not answer /health within {self.start_timeout} s")
                output = self.stop(check=False)
                raise AssertionError(f"gateway_serve on {self.url} {why}; its output:\n{output}")
            time.sleep(0.1)

    def start(self) -> ServedGateway:
        return self.launch().wait_healthy()

    def output(self) -> str:
        """What the server printed so far (all of it once it has ended)."""
        if self._reader is not None and self.process.poll() is not None:
            self._reader.join(timeout=5)  # (the rest of the pipe, up to its end)
        return "".join(self._output)

    def stop(self, check: bool = True) -> str:
        """SIGTERM unless it has ended, wait ``stop_timeout``, then kill it; returns its output. A server
        that had to be killed is an error when ``check``."""
        process = self.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            if check:
                raise AssertionError(f"gateway_serve did not stop within {self.stop_timeout} s of SIGTERM; "
                                     f"its output:\n{self.output()}") from None
        return self.output()

    def __enter__(self) -> ServedGateway:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop(check=exc is None)  # (a failure inside the block is the one to report)
