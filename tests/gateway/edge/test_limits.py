"""The request's bounds, on the hot path and Django's side alike, each answered in OpenAI's envelope:
headers (431), JSON nesting (400 invalid_json) and body size (413)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import orjson
import pytest
from django.core.exceptions import RequestDataTooBig
from django.test import RequestFactory

from gateway import errors, jsonbody
from tests.openai_schema import assert_valid


def nested(levels: int) -> object:
    """``levels`` arrays, one inside the other."""
    value: object = "innermost"
    for _ in range(levels):
        value = [value]
    return value


def error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert_valid("ErrorResponse", response.json())
    assert response.json()["error"]["code"] == code, response.text
    return response.json()["error"]


@pytest.fixture
def gateway(openai_setup: dict) -> dict:
    """A live gateway with gpt-4o-mini on the fake OpenAI, and a token, for both sides' endpoints."""
    return {"url": openai_setup["gateway"].url, "auth": {"Authorization": f"Bearer {openai_setup['token']}"}}


def chat(gateway: dict, body: bytes | dict, **kwargs) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(f"{gateway['url']}/v1/chat/completions", content=content,
                      headers={**gateway["auth"], "content-type": "application/json", **kwargs.pop("headers", {})},
                      **kwargs)


def tokenize(gateway: dict, body: bytes | dict, **kwargs) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(f"{gateway['url']}/v1/tokenize", content=content,
                      headers={**gateway["auth"], "content-type": "application/json", **kwargs.pop("headers", {})},
                      **kwargs)


CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
TOKENIZE = {"model": "gpt-4o-mini", "input": "hi"}


# --- Headers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("method, path", [
    ("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("GET", "/health"), ("GET", "/admin/login/"),
    ("GET", "/nowhere"), ("OPTIONS", "/v1/chat/completions"),
])
def test_headers_over_the_limit_are_a_431_on_every_path(gateway: dict, method: str, path: str) -> None:
    big = {**gateway["auth"], "X-Padding": "a" * 40_000}  # over the default 32 KiB
    response = httpx.request(method, f"{gateway['url']}{path}", headers=big, content=orjson.dumps(CHAT))
    err = error(response, 431, "request_header_fields_too_large")
    assert "32768" in err["message"] and response.headers["connection"] == "close"


def test_many_small_headers_count_as_much_as_one_big_one(gateway: dict, settings) -> None:
    settings.GATEWAY = {"MAX_HEADER_BYTES": 4096}
    many = [("x-h", "1")] * 600 + list(gateway["auth"].items())  # 600 x len("x-h: 1\r\n") = 4800 bytes
    error(httpx.get(f"{gateway['url']}/v1/models", headers=many), 431, "request_header_fields_too_large")
    assert httpx.get(f"{gateway['url']}/v1/models", headers=many[-300:]).status_code == 200


def test_headers_under_the_limit_are_served(gateway: dict) -> None:
    padded = {**gateway["auth"], "X-Padding": "a" * 30_000}
    assert chat(gateway, CHAT, headers=padded).status_code == 200
    assert tokenize(gateway, TOKENIZE, headers=padded).status_code == 200


# --- JSON nesting ----------------------------------------------------------------------------

@pytest.mark.parametrize("send", [chat, tokenize])
def test_json_nested_deeper_than_the_limit_is_a_400_naming_it(gateway: dict, send) -> None:
    base = CHAT if send is chat else TOKENIZE
    assert send(gateway, {**base, "metadata_padding": nested(63)}).status_code == 200  # 64 levels with the body
    err = error(send(gateway, {**base, "metadata_padding": nested(64)}), 400, "invalid_json")
    assert "64" in err["message"]
    # what DRF's own parser answered with a 500 (RecursionError), and orjson's own limit
    for levels in (1_000, 5_000, 100_000):
        error(send(gateway, b"[" * levels + b"]" * levels), 400, "invalid_json")


def test_brackets_inside_strings_are_not_nesting(gateway: dict) -> None:
    body = {**TOKENIZE, "input": "[{" * 500}
    assert tokenize(gateway, body).status_code == 200
    assert chat(gateway, {**CHAT, "messages": [{"role": "user", "content": "[[[{{{" * 100}]}).status_code == 200


def test_the_depth_limit_is_a_setting(gateway: dict, settings) -> None:
    settings.GATEWAY = {"MAX_JSON_DEPTH": 3}
    assert chat(gateway, CHAT).status_code == 200  # {"messages": [{...}]}: 3 levels
    assert "3 levels" in error(chat(gateway, {**CHAT, "x": [[[1]]]}), 400, "invalid_json")["message"]
    assert tokenize(gateway, {**TOKENIZE, "x": [[1]]}).status_code == 200
    assert "3 levels" in error(tokenize(gateway, {**TOKENIZE, "x": [[[1]]]}), 400, "invalid_json")["message"]


def test_the_drf_parser_honours_the_charset_the_client_names(gateway: dict) -> None:
    response = tokenize(gateway, orjson.dumps(TOKENIZE).decode().encode("utf-16"),
                        headers={"content-type": "application/json; charset=utf-16"})
    assert response.status_code == 200 and response.json()["tokens"] == 1
    error(tokenize(gateway, b"\xff\xfe{", headers={"content-type": "application/json; charset=utf-16"}),
          400, "invalid_json")


def test_deeper_than() -> None:
    assert not jsonbody.deeper_than(nested(64), 64) and jsonbody.deeper_than(nested(65), 64)
    assert not jsonbody.deeper_than("scalar", 0) and jsonbody.deeper_than({}, 0)
    assert jsonbody.deeper_than({"a": [1, {"b": [2, [3]]}]}, 4) and not jsonbody.deeper_than({"a": [1, {"b": [2]}]}, 4)
    wide = [[1] * 1000 for _ in range(1000)]
    assert not jsonbody.deeper_than(wide, 2) and jsonbody.deeper_than([wide], 2)


# --- Body size -------------------------------------------------------------------------------

def test_django_side_bodies_are_limited_by_max_body_bytes_not_djangos_2_5_mb(gateway: dict) -> None:
    response = tokenize(gateway, {**TOKENIZE, "padding": "a" * 3_000_000})  # Django's limit: 2.5 MB
    assert response.status_code == 200, response.text[:300]


def chunks(total: int) -> Iterator[bytes]:
    yield b'{"model": "gpt-4o-mini", "input": "hi", "padding": "'
    for _ in range(total // 1000):
        yield b"a" * 1000
    yield b'"}'


@pytest.mark.parametrize("path", ["/v1/tokenize", "/v1/chat/completions", "/v1/models"])
def test_a_body_over_max_body_bytes_is_a_413_on_both_sides(gateway: dict, settings, path: str) -> None:
    settings.GATEWAY = {"MAX_BODY_BYTES": 10_000}
    url = f"{gateway['url']}{path}"
    headers = {**gateway["auth"], "content-type": "application/json"}
    declared = httpx.post(url, content=b"{" + b" " * 20_000 + b"}", headers=headers)  # Content-Length: refused at once
    assert "10000" in error(declared, 413, "request_too_large")["message"]
    error(httpx.post(url, content=chunks(50_000), headers=headers), 413, "request_too_large")  # chunked


def test_an_admin_body_over_max_body_bytes_is_refused_before_django_spools_it(gateway: dict, settings) -> None:
    settings.GATEWAY = {"MAX_BODY_BYTES": 10_000}
    response = httpx.post(f"{gateway['url']}/admin/login/", content=b"a=" + b"b" * 20_000,
                          headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413


def test_djangos_own_too_big_is_a_413_envelope_on_api_paths_and_djangos_page_elsewhere() -> None:
    factory = RequestFactory()
    response = errors.bad_request(factory.post("/v1/tokenize"), RequestDataTooBig("too big"))
    assert response.status_code == 413 and orjson.loads(response.content)["error"]["code"] == "request_too_large"
    response = errors.bad_request(factory.post("/health"), ValueError("other"))
    assert response.status_code == 400 and orjson.loads(response.content)["error"]["type"] == "invalid_request_error"
    response = errors.bad_request(factory.post("/admin/login/"), RequestDataTooBig("too big"))
    assert response.status_code == 400 and response["content-type"].startswith("text/html")


def test_embeddings_and_completions_share_the_depth_limit(gateway: dict) -> None:
    for path in ("/v1/embeddings", "/v1/completions"):
        response = httpx.post(f"{gateway['url']}{path}", headers=gateway["auth"],
                              content=orjson.dumps({"model": "gpt-4o-mini", "input": nested(70), "prompt": "hi"}))
        error(response, 400, "invalid_json")
