"""gunicorn server hooks for `manage.py gateway_serve` with the metrics on (``--config python:`` this module).

Each worker writes its metric values to files of its own in the directory that gateway_serve gives
the workers (``PROMETHEUS_MULTIPROC_DIR``, in gunicorn's ``--env``). A dead worker's counters stay
counted; its live gauges (its log queue, its cooldown count) go with it (``child_exit``). At exit the
files go too; the directory itself when it was a temporary one gateway_serve made.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
TEMPORARY_PREFIX = "gateway-metrics-"


def metrics_dir(server: Any) -> str:
    return server.cfg.env.get(MULTIPROCESS_VARIABLE, "") if server.cfg.env else ""


def child_exit(server: Any, worker: Any) -> None:
    path = metrics_dir(server)
    if path:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, path)


def on_exit(server: Any) -> None:
    path = metrics_dir(server)
    if path:
        clear(Path(path))
        if Path(path).name.startswith(TEMPORARY_PREFIX):
            with contextlib.suppress(OSError):
                Path(path).rmdir()


def clear(path: Path) -> None:
    """Remove the metric files (``*.db``) a previous server left: a new server counts from 0."""
    for file in path.glob("*.db"):
        with contextlib.suppress(FileNotFoundError):
            file.unlink()
