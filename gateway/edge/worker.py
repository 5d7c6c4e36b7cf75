"""The gunicorn worker class that `manage.py gateway_serve` runs: uvicorn with uvloop and httptools.

No per-request access-log line unless DEBUG (py-spy showed it at ~5% of a worker's CPU at c=64;
every request is in the request log anyway). When it is on, ``?auth_token=`` values are redacted
from it: a token in a URL is never written to any log.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from uvicorn_worker import UvicornWorker

from gateway.access.query_redaction import redact_url


class RedactQueryToken(logging.Filter):
    """Hides the value of every ``auth_token`` query parameter (however encoded) in uvicorn's
    access-log records, whose arguments include the path with its query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url(a) if isinstance(a, str) else a for a in record.args)
        return True


class GatewayWorker(UvicornWorker):
    CONFIG_KWARGS: dict[str, Any] = {"loop": "uvloop", "http": "httptools", "access_log": False}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if settings.DEBUG:  # uvicorn's Config dropped the access handlers: give gunicorn's back
            access = logging.getLogger("uvicorn.access")
            access.handlers = self.log.access_log.handlers
            access.addFilter(RedactQueryToken())
