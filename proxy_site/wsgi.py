"""WSGI entry point (admin only: the /v1 inference endpoints need the ASGI application)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proxy_site.settings")

application = get_wsgi_application()
