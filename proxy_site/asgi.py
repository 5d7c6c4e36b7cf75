"""ASGI entry point: ``gunicorn proxy_site.asgi:application -k uvicorn_worker.UvicornWorker``."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proxy_site.settings")

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

from gateway.asgi import GatewayApp

# The admin's CSS/JS are served by Django's own static handler: the admin is low-traffic, and
# this keeps the gateway one process with no collectstatic step.
application = GatewayApp(ASGIStaticFilesHandler(get_asgi_application()))
