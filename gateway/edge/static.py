"""Static files (the admin's and the API docs' CSS and JavaScript), served by the ASGI app itself.

WhiteNoise decides what is served and how: its index of the files (``STATIC_ROOT`` in production,
filled by ``collectstatic``; the apps' own directories otherwise, see ``WHITENOISE_USE_FINDERS`` in
the settings), their headers (``Cache-Control``: a year and more, immutable, for the hashed names
of production; ETag, Last-Modified, ``Vary: Accept-Encoding``), the gzip copies for clients that
accept them, conditional and range requests. WhiteNoise speaks WSGI and Django middleware only;
as Django middleware under ASGI every file would cross into a thread and back, Django would read
the whole file into memory and warn about a synchronous iterator on each one. So this small ASGI
layer asks WhiteNoise's index for the path and sends the file itself, reading it in blocks in a
thread; any other path (a missing file included: the 404 handler's plain page) goes on to Django.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Awaitable, Callable

from django.contrib.staticfiles.storage import ManifestFilesMixin, staticfiles_storage
from django.core.exceptions import ImproperlyConfigured
from whitenoise.middleware import WhiteNoiseMiddleware
from whitenoise.responders import Redirect, StaticFile

from gateway.edge.http import Receive, Scope, Send

BLOCK_BYTES = 64 * 1024


def request_headers(scope: Scope) -> dict[str, str]:
    """The request's headers as WhiteNoise reads them (WSGI's ``HTTP_IF_NONE_MATCH`` form)."""
    return {"HTTP_" + name.decode("latin-1").upper().replace("-", "_"): value.decode("latin-1")
            for name, value in scope["headers"]}


def check_collected() -> None:
    """Production's hashed names come from the manifest ``collectstatic`` writes: without it every
    admin page would fail (500), so the app refuses to start instead, saying what to run."""
    if isinstance(staticfiles_storage, ManifestFilesMixin) and \
            not staticfiles_storage.manifest_storage.exists(staticfiles_storage.manifest_name):
        raise ImproperlyConfigured(
            f"No static files in {staticfiles_storage.location} (no {staticfiles_storage.manifest_name}): run "
            "`python manage.py collectstatic --noinput` before starting in production mode "
            "(`manage.py gateway_serve` runs it; the Dockerfile runs it when the image is built).")


class StaticFiles:
    """ASGI: a path WhiteNoise knows is answered here; every other request goes to ``app``."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        check_collected()
        self.app = app
        with warnings.catch_warnings():
            # Outside production the files come from the apps' directories and STATIC_ROOT may not exist
            # (in production check_collected() has made sure it does).
            warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
            self.whitenoise = WhiteNoiseMiddleware()  # reads STATIC_ROOT, STATIC_URL and WHITENOISE_* settings
        self.prefix = self.whitenoise.static_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            whitenoise = self.whitenoise
            path = scope["path"]
            found = whitenoise.find_file(path) if whitenoise.autorefresh else whitenoise.files.get(path)
            if found is not None:
                await self.serve(found, scope, send)
                return
        await self.app(scope, receive, send)

    @staticmethod
    async def serve(found: StaticFile | Redirect, scope: Scope, send: Send) -> None:
        # (GET and HEAD only: WhiteNoise answers any other method 405 with an Allow header.)
        response = found.get_response(scope["method"], request_headers(scope))
        headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in response.headers]
        headers.append((b"x-content-type-options", b"nosniff"))  # (Django's SecurityMiddleware is not on this path)
        await send({"type": "http.response.start", "status": int(response.status), "headers": headers})
        file = response.file
        if file is None:  # HEAD, 304, 405, 416
            await send({"type": "http.response.body", "body": b""})
            return
        try:
            while True:
                block = await asyncio.to_thread(file.read, BLOCK_BYTES)
                more = len(block) == BLOCK_BYTES
                await send({"type": "http.response.body", "body": block, "more_body": more})
                if not more:
                    break
        finally:
            file.close()
