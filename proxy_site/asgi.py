"""ASGI entry point: ``gunicorn proxy_site.asgi:application -k gateway.edge.worker.GatewayWorker``."""

from typing import Any

from proxy_site.settings import use_these_settings


def _application() -> Any:
    use_these_settings()  # before anything imports Django's settings
    from django.core.asgi import get_asgi_application

    from gateway.edge.app import GatewayApp
    from gateway.edge.static import StaticFiles

    # The admin's CSS/JS are served by the gateway itself (WhiteNoise's index, gateway/edge/static.py):
    # one process, no separate web server. A path that is no static file goes on to Django.
    return GatewayApp(StaticFiles(get_asgi_application()))


application = _application()
