"""With DEBUG on, a token sent in the URL appears in no page: unknown paths and unexpected errors are
answered by the gateway's own handlers, never by Django's technical pages (which show the URL and the
query parameters)."""

from __future__ import annotations

import httpx
import pytest

from gateway.api import views
from tests.conftest import make_model, make_provider, make_token


@pytest.fixture
def debug_gateway(live_gateway, settings) -> dict:
    settings.DEBUG = True
    make_model("gpt-4o", (make_provider(base_url="http://127.0.0.1:9/v1"), "gpt-4o"))
    token = make_token()
    return {"url": live_gateway.url, "token": token}


def test_the_percent_encoded_query_form_is_a_token_the_gateway_accepts(debug_gateway: dict) -> None:
    response = httpx.get(f"{debug_gateway['url']}/v1/models?auth%5Ftoken={debug_gateway['token']}")
    assert response.status_code == 200  # (so it must be redacted as well)


@pytest.mark.parametrize("method, path", [
    ("GET", "/v1/nothing"), ("POST", "/v1/nothing"), ("GET", "/v1/models/"), ("GET", "/v1/chat/completions/x"),
    ("GET", "/nothing"), ("POST", "/nothing"), ("GET", "/v1/a%0Ab"), ("GET", "/healthz"), ("GET", "/v1"),
    ("GET", "/static/nope.css"), ("GET", "/static/admin/"),
])
def test_unknown_paths_show_no_token_even_with_debug(debug_gateway: dict, method: str, path: str) -> None:
    token = debug_gateway["token"]
    for query in (f"auth%5Ftoken={token}", f"auth_token={token}", f"x=1&auth%5ftoken={token}&auth_token={token}"):
        response = httpx.request(method, f"{debug_gateway['url']}{path}?{query}")
        assert response.status_code == 404, (path, response.status_code)
        assert token not in response.text and "Technical" not in response.text and "URLconf" not in response.text
        if path.startswith("/v1/"):
            assert response.json()["error"]["code"] == "not_found"


def test_the_admin_still_redirects_and_is_still_djangos(debug_gateway: dict) -> None:
    response = httpx.get(f"{debug_gateway['url']}/admin")
    assert response.status_code == 301 and response.headers["location"] == "/admin/"
    assert httpx.get(f"{debug_gateway['url']}/admin/login/").status_code == 200
    assert httpx.get(f"{debug_gateway['url']}/static/admin/css/base.css").status_code == 200


def test_an_unexpected_error_in_a_drf_view_shows_no_token_even_with_debug(debug_gateway: dict,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("internals")

    monkeypatch.setattr(views.tokenizer, "count_text", broken)
    token = debug_gateway["token"]
    response = httpx.post(f"{debug_gateway['url']}/v1/tokenize?auth%5Ftoken={token}",
                          json={"model": "gpt-4o", "input": "hi"})
    assert response.status_code == 500 and response.json()["error"]["type"] == "server_error"
    assert token not in response.text and "internals" not in response.text


def test_a_disallowed_host_on_an_api_path_is_the_envelope_not_djangos_debug_page(debug_gateway: dict, settings) -> None:
    settings.ALLOWED_HOSTS = ["gateway.example"]
    token = debug_gateway["token"]
    for path in ("/v1/models", "/health", "/v1/tokenize"):
        response = httpx.get(f"{debug_gateway['url']}{path}?auth%5Ftoken={token}", headers={"Host": "evil.example"})
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_host", path
        assert token not in response.text


def test_too_many_query_parameters_is_a_400_envelope_not_a_page(debug_gateway: dict) -> None:
    token = debug_gateway["token"]
    many = "&".join(f"p{i}=1" for i in range(1_100))  # over Django's DATA_UPLOAD_MAX_NUMBER_FIELDS (1000)
    for path in ("/v1/models", "/v1/model-options"):
        response = httpx.get(f"{debug_gateway['url']}{path}?auth%5Ftoken={token}&{many}")
        assert response.status_code == 400 and response.json()["error"]["code"] == "bad_request", path
        assert token not in response.text
