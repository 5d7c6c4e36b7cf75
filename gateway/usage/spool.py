"""The request log's spool file: rows still unwritten when a process stops (the database down or
hanging at shutdown) are appended to it, one JSON object a line; the next start hands them back to
the log writer, which writes them to the database when it can.

``GATEWAY_LOG_SPOOL_PATH`` names the file (default: ``request-log-spool.jsonl`` beside manage.py,
where the local ``.secret_key`` is). Several workers stopping at once append under an exclusive
lock; a starting worker takes the whole file by renaming it first, so that of several workers
starting together exactly one replays each row.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings

from gateway.conf import gateway_settings

logger = logging.getLogger(__name__)

# Values that JSON does not carry as such: written tagged, read back to their type.
_DATETIME, _DECIMAL = "$dt:", "$dec:"


def default_path() -> Path:
    return Path(settings.BASE_DIR) / "request-log-spool.jsonl"


def path() -> Path:
    configured = gateway_settings.LOG_SPOOL_PATH
    return Path(configured) if configured else default_path()


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return _DATETIME + value.isoformat()
    if isinstance(value, Decimal):
        return _DECIMAL + str(value)
    raise TypeError(type(value).__name__)


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for name, value in row.items():
        if isinstance(value, str):
            if value.startswith(_DATETIME):
                row[name] = datetime.fromisoformat(value[len(_DATETIME):])
            elif value.startswith(_DECIMAL):
                row[name] = Decimal(value[len(_DECIMAL):])
    return row


def save(rows: Iterable[dict[str, Any]]) -> int:
    """Append rows to the spool file (created 0600: rows may hold prompts); returns how many."""
    lines = [orjson.dumps(row, default=_encode, option=orjson.OPT_PASSTHROUGH_DATETIME) + b"\n" for row in rows]
    if not lines:
        return 0
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b"".join(lines))
        os.fsync(fd)
    finally:
        os.close(fd)
    return len(lines)


def claim() -> list[dict[str, Any]]:
    """Take every row of the spool file (which is then gone): [] when there is none. A line that does
    not read back (cut short by a crash while it was written) is skipped, and said so."""
    source = path()
    taken = source.with_name(f"{source.name}.{os.getpid()}.replaying")
    try:
        os.rename(source, taken)  # atomic: another worker starting now finds no file
    except FileNotFoundError:
        return []
    rows = []
    try:
        with open(taken, "rb") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # a worker still appending to it finishes first
            for number, line in enumerate(handle, 1):
                try:
                    rows.append(_decode(orjson.loads(line)))
                except (orjson.JSONDecodeError, ValueError, ArithmeticError):
                    logger.error("request log spool %s: line %d does not read back; skipped", source, number)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(taken)
    return rows
