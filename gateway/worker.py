"""The gunicorn worker class that `manage.py gateway_serve` runs: uvicorn with uvloop and httptools,
and no per-request access-log line (py-spy showed it at ~5% of a worker's CPU at c=64; every request
is in the request log anyway)."""

from __future__ import annotations

from typing import Any

from uvicorn_worker import UvicornWorker


class GatewayWorker(UvicornWorker):
    CONFIG_KWARGS: dict[str, Any] = {"loop": "uvloop", "http": "httptools", "access_log": False}
