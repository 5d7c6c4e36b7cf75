"""Django middleware of the gateway (the hot path does the same in gateway/edge/http.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from gateway import redaction
from gateway.routing import registry

logger = logging.getLogger(__name__)


class RedactSecretsMiddleware:
    """Every page and API answer Django renders (the admin, ``/health``, ``/v1/models``, ...) leaves
    with every piece of a provider key replaced, whatever put it there (an upstream error text
    stored as an account's last error, a message shown after "check connection")."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not response.streaming:
            try:
                registry.current_sync()  # loading the registry installs the keys to look for
            except Exception:  # (the database is away: the keys last learnt still apply)
                logger.warning("could not refresh the keys to redact", exc_info=True)
            content = redaction.data(response.content)
            if content is not response.content:
                response.content = content
                if response.has_header("Content-Length"):
                    response["Content-Length"] = str(len(content))
            for name, value in response.items():
                redacted = redaction.text(value)
                if redacted != value:
                    response[name] = redacted
        return response
