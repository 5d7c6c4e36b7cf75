"""WSGI entry point (admin only: the /v1 inference endpoints need the ASGI application)."""

from typing import Any

from proxy_site.settings import use_these_settings


def _application() -> Any:
    use_these_settings()  # before anything imports Django's settings
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


application = _application()
