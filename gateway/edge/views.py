"""``HotView``: DRF's view conventions for the endpoints that run on the lean ASGI path.

Why a separate path: measured on this machine, Django's ASGI handler alone caps a no-op view
near 1,000 requests/s on 2 workers, because it runs each request through a thread executor;
the same view as a plain ASGI handler on the event loop served ~8,000. The inference endpoints
(high volume, JSON only, no sessions or HTML) therefore run here; everything else is an
ordinary Django/DRF view.

What stays the same as DRF: a view lists ``authentication_classes``, ``permission_classes`` and
``throttle_classes`` (defaulting to the same ``REST_FRAMEWORK`` settings as every DRF view), and
one ``initial()`` runs them before the handler; every error is rendered by
``gateway.errors.render``. Authentication and throttle classes give an async entry
(``aauthenticate``, ``aallow_request``) beside DRF's sync one, so one class serves both paths.

What Django machinery does NOT run on this path, and what stands in for it:

- ``MIDDLEWARE``: no CorsMiddleware (``gateway/edge/cors.py`` adds the same headers; preflight
  ``OPTIONS`` requests go to Django), no SecurityMiddleware, sessions, CSRF (tokens are headers,
  never cookies), auth/messages or clickjacking middleware;
- URL resolution per request: ``proxy_site/urls.py`` names these endpoints, and the ASGI app
  reads them once into a path -> view table (``gateway.edge.app.hot_routes``);
- ``HttpRequest``/``HttpResponse``, ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (``MAX_BODY_BYTES`` bounds the
  body instead), the ``request_started``/``request_finished`` signals (code that touches the
  database here closes stale connections itself), ``handler500`` and DEBUG error pages (the ASGI
  app's own error boundary renders every failure);
- ``ALLOWED_HOSTS`` is checked by the ASGI app itself, with Django's own host validation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.settings import api_settings

from gateway.edge.http import Request, Response
from gateway.errors import GatewayError, not_authenticated, render


class HotView:
    """Base class of a hot-path endpoint: set ``method`` and implement ``handle()`` (or ``dispatch()``)."""

    method: ClassVar[str] = "POST"
    authentication_classes: ClassVar[Sequence[type]] = api_settings.DEFAULT_AUTHENTICATION_CLASSES
    permission_classes: ClassVar[Sequence[type]] = api_settings.DEFAULT_PERMISSION_CLASSES
    throttle_classes: ClassVar[Sequence[type]] = api_settings.DEFAULT_THROTTLE_CLASSES
    # The envelope its errors are rendered in (gateway.errors.STYLES): the API this view speaks.
    error_style: ClassVar[str] = "default"

    def __init__(self) -> None:
        # One instance serves every request of its path: the policy objects hold no per-request state.
        self.authenticators = [cls() for cls in self.authentication_classes]
        self.permissions = [cls() for cls in self.permission_classes]
        self.throttles = [cls() for cls in self.throttle_classes]

    async def initial(self, request: Request) -> None:
        """Runs before ``handle``: authentication, then permissions, then throttles (as DRF's ``initial``)."""
        await self.perform_authentication(request)
        self.check_permissions(request)
        await self.check_throttles(request)

    async def perform_authentication(self, request: Request) -> None:
        for authenticator in self.authenticators:
            found = await authenticator.aauthenticate(request)
            if found is not None:
                request.user, request.auth = found
                return

    def check_permissions(self, request: Request) -> None:
        for permission in self.permissions:
            if not permission.has_permission(request, self):
                if request.user is None:
                    raise not_authenticated()
                raise GatewayError(403, str(getattr(permission, "message", "Permission denied.")),
                                   "permission_error", "permission_denied")

    async def check_throttles(self, request: Request) -> None:
        waits = []
        for throttle in self.throttles:
            if not await throttle.aallow_request(request, self):
                waits.append(throttle.wait())
        if waits:
            known = [wait for wait in waits if wait is not None]
            retry = str(max(1, int(max(known)))) if known else None
            raise GatewayError(429, "Request was throttled.", "rate_limit_error", "rate_limit_exceeded",
                               retry_after=retry)

    async def dispatch(self, request: Request, response: Response) -> None:
        """What the ASGI app calls: ``initial()``, then ``handle()``."""
        await self.initial(request)
        await self.handle(request, response)

    async def handle(self, request: Request, response: Response) -> None:
        raise NotImplementedError

    @classmethod
    def as_view(cls) -> Callable[..., HttpResponse]:
        """The entry for ``urls.py``: names the endpoint (``reverse()``, the OpenAPI description) and
        lets the ASGI app find the view. Django itself only sees such a path for ``OPTIONS``."""

        def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method == "OPTIONS":
                return HttpResponse(headers={"Allow": f"{cls.method}, OPTIONS"})
            status, headers, payload = render(GatewayError(
                501, "This endpoint is served by the gateway's ASGI application (proxy_site.asgi), "
                "not through Django's request handler.", "server_error", "not_implemented"))
            return JsonResponse(payload, status=status, headers=headers)

        view.hot_view = cls  # type: ignore[attr-defined]
        view.csrf_exempt = True  # type: ignore[attr-defined]
        view.__doc__ = cls.__doc__
        return view
