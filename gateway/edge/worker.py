"""The gunicorn worker class that `manage.py gateway_serve` runs: uvicorn with uvloop and httptools.

No per-request access-log line unless DEBUG (py-spy showed it at ~5% of a worker's CPU at c=64;
every request is in the request log anyway). When it is on, ``?auth_token=`` values are redacted
from it: a token in a URL is never written to any log.

On SIGTERM (gunicorn's master passes it on) the worker stops accepting connections, lets its requests
finish for up to ``GATEWAY_GRACEFUL_TIMEOUT`` seconds, then ends those still running with an error
(gateway/edge/shutdown.py), writes its log rows and exits.
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import Any

from django.conf import settings
from gunicorn.arbiter import Arbiter
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

from gateway.access.query_redaction import redact_url
from gateway.conf import gateway_settings
from gateway.edge.shutdown import drain

# uvicorn's own limit on the graceful shutdown, a backstop behind the grace period's cut.
BACKSTOP_SECONDS = 5


class RedactQueryToken(logging.Filter):
    """Hides the value of every ``auth_token`` query parameter (however encoded) in uvicorn's
    access-log records, whose arguments include the path with its query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url(a) if isinstance(a, str) else a for a in record.args)
        return True


class DrainingServer(Server):
    """uvicorn's server, whose shutdown starts the grace period's clock for the requests in flight."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        drain.begin(gateway_settings.GRACEFUL_TIMEOUT)
        await super().shutdown(sockets)


class GatewayWorker(UvicornWorker):
    CONFIG_KWARGS: dict[str, Any] = {"loop": "uvloop", "http": "gateway.edge.protocol:GatewayHttpProtocol",
                                     "access_log": False}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.timeout_graceful_shutdown = gateway_settings.GRACEFUL_TIMEOUT + BACKSTOP_SECONDS
        if settings.DEBUG:  # uvicorn's Config dropped the access handlers: give gunicorn's back
            access = logging.getLogger("uvicorn.access")
            access.handlers = self.log.access_log.handlers
            access.addFilter(RedactQueryToken())

    async def _serve(self) -> None:  # (uvicorn_worker's, with the draining server)
        self.config.app = self.wsgi
        server = DrainingServer(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
