"""ASGI entry point: ``gunicorn proxy_site.asgi:application -k gateway.edge.worker.GatewayWorker``."""

from typing import Any

from proxy_site.settings import use_these_settings


def _application() -> Any:
    use_these_settings()  # before anything imports Django's settings
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
    from django.core.asgi import get_asgi_application

    from gateway.edge.app import GatewayApp

    # The admin's CSS/JS are served by Django's own static handler: the admin is low-traffic, and
    # this keeps the gateway one process with no collectstatic step.
    return GatewayApp(ASGIStaticFilesHandler(get_asgi_application()))


application = _application()
