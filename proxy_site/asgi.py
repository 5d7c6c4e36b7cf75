"""ASGI entry point: ``gunicorn proxy_site.asgi:application -k gateway.edge.worker.GatewayWorker``."""

from typing import Any

from proxy_site.settings import use_these_settings


def _application() -> Any:
    use_these_settings()  # before anything imports Django's settings
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
    from django.core.asgi import get_asgi_application
    from django.http import Http404

    from gateway import errors
    from gateway.edge.app import GatewayApp

    class StaticFiles(ASGIStaticFilesHandler):
        """A missing file is the 404 handler's plain page, even with DEBUG (Django's technical 404
        page shows the URL, a ``?auth_token=`` included)."""

        def serve(self, request: Any) -> Any:
            try:
                return super().serve(request)
            except Http404:
                return errors.not_found(request)

    # The admin's CSS/JS are served by Django's own static handler: the admin is low-traffic, and
    # this keeps the gateway one process with no collectstatic step.
    return GatewayApp(StaticFiles(get_asgi_application()))


application = _application()
