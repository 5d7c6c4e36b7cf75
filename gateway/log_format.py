"""The two shapes of the gateway's log lines (``GATEWAY_LOG_FORMAT``; settings.LOGGING picks one).

- ``TextFormatter``: ``time level logger message``, and for a request line (gateway/usage/request_lines.py)
  its fields as ``key=value``; control characters are escaped, so a client's text cannot start a line.
- ``JsonFormatter``: one JSON object per line — ``time``, ``level``, ``logger``, ``message`` (and ``exc``
  with a traceback); a request line's fields are keys of the same object.

The handler's filter (``gateway.redaction.RedactLogRecords``) redacts the message and traceback; the
formatters redact a request line whole, fields included, but for ``token``: that is the token's prefix
as the admin shows it (``sk-gw-`` and 6 characters: useless to guess), which the redactor's rule for
things shaped like keys would otherwise hide.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway import redaction

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _escaped(value: object) -> str:
    text = "" if value is None else str(value)
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return f'"{text}"' if (" " in text or not text) else text


def _without_token(fields: dict[str, Any]) -> tuple[dict[str, Any], str]:
    rest = dict(fields)
    return rest, str(rest.pop("token", "") or "")


def _redacted(fields: dict[str, Any]) -> dict[str, Any]:
    """The string values redacted, in one redactor call (joined by NUL, which no key and no "[redacted]"
    holds; one per value when a value holds a NUL itself). Before serialising: a redaction in JSON
    text could eat the letter of an escape (``\\n`` followed by a key) and break the line."""
    keys = [key for key, value in fields.items() if isinstance(value, str) and value]
    values = [fields[key] for key in keys]
    joined = "\0".join(values)
    parts = redaction.text(joined).split("\0")
    if len(parts) != len(values):
        parts = [redaction.text(value) for value in values]
    return {**fields, **dict(zip(keys, parts, strict=True))}


def _exception(record: logging.LogRecord, formatter: logging.Formatter) -> str:
    if record.exc_info and not record.exc_text:
        record.exc_text = formatter.formatException(record.exc_info)
    return record.exc_text or ""


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        request: dict[str, Any] | None = getattr(record, "gateway_call", None)
        if request is None:
            return redaction.text(super().format(record))
        rest, token = _without_token(request)
        details = " ".join(f"{key}={_escaped(value)}" for key, value in rest.items()
                           if key != "time" and value not in (None, "", False))
        line = redaction.text(f"{_CONTROL.sub(' ', record.getMessage())} {details}")
        return f"{self.formatTime(record)} {record.levelname} {record.name} {line}" + \
            (f" token={_escaped(token)}" if token else "")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request: dict[str, Any] | None = getattr(record, "gateway_call", None)
        if request is not None:
            rest, token = _without_token(request)
            data.update({key: value for key, value in rest.items() if value is not None or key != "time"})
        if exc := _exception(record, self):
            data["exc"] = exc
        data = _redacted(data)
        if request is not None and token:
            data["token"] = token
        return orjson.dumps(data, default=str).decode()
