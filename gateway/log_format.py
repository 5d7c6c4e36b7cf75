"""The two shapes of the gateway's log lines (``GATEWAY_LOG_FORMAT``; settings.LOGGING picks one).

- ``TextFormatter``: ``time level logger message``, and for a request line (gateway/usage/request_lines.py)
  its fields as ``key=value``; control characters are escaped, so a client's text cannot start a line.
- ``JsonFormatter``: one JSON object per line — ``time``, ``level``, ``logger``, ``message`` (and ``exc``
  with a traceback); a request line's fields are keys of the same object.

The handler's filter (``gateway.redaction.RedactLogRecords``) redacts the message and traceback; the
formatters redact a request line's fields too, each string but ``token``: that is the token's prefix as
the admin shows it (``sk-gw-`` and 6 characters: useless to guess), which the redactor's rule for
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


NOT_REDACTED = frozenset({"token"})


def _redacted(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: redaction.text(value) if isinstance(value, str) and key not in NOT_REDACTED else value
            for key, value in fields.items()}


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
        message = redaction.text(_CONTROL.sub(" ", record.getMessage()))
        details = " ".join(f"{key}={_escaped(value)}" for key, value in _redacted(request).items()
                           if key != "time" and value not in (None, "", False))
        return f"{self.formatTime(record)} {record.levelname} {record.name} {message} {details}"


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
            data["message"] = redaction.text(data["message"])
            data.update({key: value for key, value in _redacted(request).items() if value is not None or key != "time"})
            return orjson.dumps(data, default=str).decode()
        if exc := _exception(record, self):
            data["exc"] = exc
        return redaction.text(orjson.dumps(data, default=str).decode())
