"""Hot views: named in urls.py, served by the ASGI app, policies run by one initial() as in DRF."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import orjson
import pytest
from django.test import Client
from django.urls import reverse

from gateway.edge.app import GatewayApp, hot_routes
from gateway.edge.http import Request, Response
from gateway.edge.views import HotView
from gateway.inference.views import ChatCompletions, Completions, CountTokens, Embeddings, Messages, Responses


def test_every_inference_endpoint_is_named_in_urls_and_served_from_that_table() -> None:
    assert reverse("chat-completions") == "/v1/chat/completions"
    assert reverse("completions") == "/v1/completions"
    assert reverse("embeddings") == "/v1/embeddings"
    assert reverse("responses") == "/v1/responses"
    assert reverse("messages") == "/v1/messages"
    assert reverse("messages-count-tokens") == "/v1/messages/count_tokens"
    routes = hot_routes()
    assert {path: type(view) for path, view in routes.items()} == {
        "/v1/chat/completions": ChatCompletions, "/v1/completions": Completions, "/v1/embeddings": Embeddings,
        "/v1/responses": Responses, "/v1/messages": Messages, "/v1/messages/count_tokens": CountTokens}


def run_asgi(app: Any, method: str = "POST", path: str = "/x", headers: list | None = None,
             body: bytes = b"{}") -> tuple[int, dict[str, str], bytes]:
    """One request through an ASGI app, in this thread."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "query_string": b"",
             "headers": headers if headers is not None else [(b"host", b"testserver")]}
    asyncio.run(app(scope, receive, send))
    start = sent[0]
    return (start["status"], {k.decode(): v.decode() for k, v in start["headers"]},
            b"".join(m.get("body", b"") for m in sent[1:]))


class Recorder:
    """Policy classes that note the order they ran in."""

    log: ClassVar[list[str]] = []


class NoteAuthentication(Recorder):
    async def aauthenticate(self, request: Request) -> tuple[str, None] | None:
        self.log.append("authenticate")
        return ("someone", None) if request.headers.get("x-user") else None


class NoteUser(Recorder):
    def has_permission(self, request: Request, view: HotView) -> bool:
        self.log.append("permission")
        return request.user is not None


class Deny(Recorder):
    async def aallow_request(self, request: Request, view: HotView) -> bool:
        self.log.append("throttle")
        return False

    def wait(self) -> float:
        return 7.2


class Echo(HotView):
    authentication_classes = [NoteAuthentication]
    permission_classes = [NoteUser]
    throttle_classes: ClassVar[list[type]] = []

    async def handle(self, request: Request, response: Response) -> None:
        Recorder.log.append("handle")
        await response.json(200, orjson.dumps({"user": request.user}))


class Throttled(Echo):
    throttle_classes = [Deny]


def app_with(view: type[HotView]) -> GatewayApp:
    app = GatewayApp(django_app=None)  # type: ignore[arg-type]
    app.routes = {"/x": view()}
    return app


def test_initial_runs_authentication_then_permissions_then_the_handler() -> None:
    Recorder.log.clear()
    status, _, body = run_asgi(app_with(Echo), headers=[(b"host", b"testserver"), (b"x-user", b"1")])
    assert (status, orjson.loads(body)) == (200, {"user": "someone"})
    assert Recorder.log == ["authenticate", "permission", "handle"]


def test_a_request_no_authenticator_accepts_gets_the_401_envelope() -> None:
    Recorder.log.clear()
    status, headers, body = run_asgi(app_with(Echo))
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    assert orjson.loads(body)["error"]["code"] == "invalid_api_key"
    assert "handle" not in Recorder.log


def test_a_throttle_that_refuses_answers_429_with_retry_after_before_the_handler() -> None:
    Recorder.log.clear()
    status, headers, body = run_asgi(app_with(Throttled), headers=[(b"host", b"testserver"), (b"x-user", b"1")])
    assert status == 429 and headers["retry-after"] == "7"
    assert orjson.loads(body)["error"]["type"] == "rate_limit_error"
    assert Recorder.log == ["authenticate", "permission", "throttle"]


def test_the_wrong_method_gets_405_with_allow() -> None:
    status, headers, body = run_asgi(app_with(Echo), method="GET")
    assert status == 405 and headers["allow"] == "POST"
    assert orjson.loads(body)["error"]["code"] == "method_not_allowed"


def test_a_host_outside_allowed_hosts_is_refused_on_the_hot_path(settings) -> None:
    settings.ALLOWED_HOSTS = ["gateway.example"]
    ok = run_asgi(app_with(Echo), headers=[(b"host", b"gateway.example:8000"), (b"x-user", b"1")])
    bad = run_asgi(app_with(Echo), headers=[(b"host", b"evil.example"), (b"x-user", b"1")])
    assert ok[0] == 200
    assert bad[0] == 400 and orjson.loads(bad[2])["error"]["code"] == "invalid_host"


@pytest.mark.django_db
def test_django_itself_never_serves_a_hot_path_by_accident() -> None:
    response = Client().post("/v1/chat/completions", data={}, content_type="application/json")
    assert response.status_code == 501
    assert "ASGI" in response.json()["error"]["message"]


def test_under_ssl_redirect_plain_http_is_refused_and_https_answers_carry_hsts(settings) -> None:
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    user = (b"x-user", b"1")
    plain = run_asgi(app_with(Echo), headers=[(b"host", b"testserver"), user])
    assert plain[0] == 403 and orjson.loads(plain[2])["error"]["code"] == "https_required"
    assert "strict-transport-security" not in plain[1]
    proxied = run_asgi(app_with(Echo), headers=[(b"host", b"testserver"), user, (b"x-forwarded-proto", b"https")])
    assert proxied[0] == 200 and proxied[1]["strict-transport-security"] == "max-age=3600; includeSubDomains"
    settings.SECURE_SSL_REDIRECT = False
    assert run_asgi(app_with(Echo), headers=[(b"host", b"testserver"), user])[0] == 200


def test_generated_request_ids_are_unique_and_well_formed() -> None:
    from gateway.edge.http import _REQUEST_ID, new_request_id

    ids = {new_request_id() for _ in range(10_000)}
    assert len(ids) == 10_000 and all(_REQUEST_ID.match(i) and i.startswith("req_") for i in ids)
