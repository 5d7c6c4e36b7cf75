"""POST /v1/tokenize against a live gateway: exact counts for OpenAI models, marked estimates otherwise."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.conftest import make_model, make_provider, make_token
from tests.gateway.usage.test_tokenizer import COOKBOOK_MESSAGES
from tests.openai_schema import assert_valid

# Nothing listens here: tokenizing must never call an upstream.
NO_UPSTREAM = "http://127.0.0.1:9/v1"


@pytest.fixture
def setup(live_gateway) -> dict:
    openai = make_provider("openai-main", base_url=NO_UPSTREAM)
    local = make_provider("local-llama", kind="openai_compatible", base_url=NO_UPSTREAM)
    make_model("gpt-4o", (openai, "gpt-4o"), context_window=128000)
    make_model("gpt-4", (openai, "gpt-4"), context_window=8192)
    make_model("fast", (openai, "gpt-4o-mini"), context_window=128000)
    make_model("llama-3.1-8b", (local, "meta-llama/Llama-3.1-8B-Instruct"), context_window=8192)
    make_model("mystery", (local, "mystery-model"))
    make_model("unserved", context_window=4096)
    return {"gateway": live_gateway, "token": make_token()}


def tokenize(setup: dict, body: dict | bytes, token: str | None = "default") -> httpx.Response:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {setup['token'] if token == 'default' else token}"
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(f"{setup['gateway'].v1}/tokenize", content=content, headers=headers)


def error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert_valid("ErrorResponse", response.json())
    return response.json()["error"]


def test_a_token_is_required(setup: dict) -> None:
    err = error(tokenize(setup, {"model": "gpt-4o", "input": "hi"}, token=None), 401)
    assert err["code"] == "invalid_api_key"
    assert error(tokenize(setup, {"model": "gpt-4o", "input": "hi"}, token="sk-wrong"), 401)["code"] == "invalid_api_key"


def test_a_string_is_counted_exactly_with_the_models_encoding(setup: dict) -> None:
    response = tokenize(setup, {"model": "gpt-4o", "input": "tiktoken is great!"})
    assert response.status_code == 200
    assert response.json() == {
        "object": "tokenize", "model": "gpt-4o", "tokens": 6, "exact": True, "estimated": False,
        "method": "tiktoken:o200k_base", "context_window": 128000, "remaining": 127994,
    }


def test_a_list_of_strings_is_counted_one_by_one(setup: dict) -> None:
    response = httpx.post(f"{setup['gateway'].v1}/tokenize", headers={"X-AUTH-TOKEN": setup["token"]},
                          json={"model": "gpt-4", "input": ["hello world", "tiktoken is great!"]})
    data = response.json()
    assert response.status_code == 200
    assert (data["tokens"], data["counts"], data["method"]) == (8, [2, 6], "tiktoken:cl100k_base")
    assert (data["context_window"], data["remaining"]) == (8192, 8184)


def test_chat_messages_include_the_cookbooks_overhead(setup: dict) -> None:
    for model, tokens in (("gpt-4o", 124), ("gpt-4", 129)):
        data = tokenize(setup, {"model": model, "messages": COOKBOOK_MESSAGES}).json()
        assert (data["tokens"], data["exact"], data["estimated"]) == (tokens, True, False)
        assert "counts" not in data


def test_an_alias_counts_with_the_tokenizer_of_the_model_that_serves_it(setup: dict) -> None:
    data = tokenize(setup, {"model": "fast", "input": "tiktoken is great!"}).json()
    assert (data["model"], data["method"], data["exact"], data["tokens"]) == ("fast", "tiktoken:o200k_base", True, 6)


def test_other_models_get_a_marked_estimate_and_the_remaining_context(setup: dict) -> None:
    data = tokenize(setup, {"model": "llama-3.1-8b", "messages": [{"role": "user", "content": "hello world"}]}).json()
    assert (data["exact"], data["estimated"], data["method"]) == (False, True, "estimate:o200k_base")
    assert data["tokens"] > 2 and data["remaining"] == 8192 - data["tokens"]
    unknown_window = tokenize(setup, {"model": "mystery", "input": "hello"}).json()
    assert (unknown_window["context_window"], unknown_window["remaining"]) == (None, None)


def test_unknown_and_unserved_models_are_not_found(setup: dict) -> None:
    for model in ("no-such-model", "unserved"):
        err = error(tokenize(setup, {"model": model, "input": "hi"}), 404)
        assert (err["code"], err["param"]) == ("model_not_found", "model")


def test_a_model_the_token_may_not_use_is_forbidden(setup: dict) -> None:
    limited = make_token("limited", allowed_models="gpt-4o")
    assert tokenize(setup, {"model": "gpt-4o", "input": "hi"}, token=limited).status_code == 200
    err = error(tokenize(setup, {"model": "gpt-4", "input": "hi"}, token=limited), 403)
    assert (err["code"], err["param"], err["type"]) == ("model_not_allowed", "model", "permission_error")


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "gpt-4o"}, "input"),
    ({"model": "gpt-4o", "input": "hi", "messages": [{"role": "user", "content": "hi"}]}, "input"),
    ({"model": "gpt-4o", "input": 42}, "input"),
    ({"model": "gpt-4o", "input": []}, "input"),
    ({"model": "gpt-4o", "input": ["ok", 7]}, "input[1]"),
    ({"model": "gpt-4o", "messages": "hi"}, "messages"),
    ({"model": "gpt-4o", "messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
    ({"model": "gpt-4o", "messages": [{"role": "user"}]}, "messages[0].content"),
    ({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "tools": {"a": 1}}, "tools"),
    ({"model": 5, "input": "hi"}, "model"),
    ({"input": "hi"}, "model"),
])
def test_bad_input_is_a_400_naming_the_parameter(setup: dict, body: dict, param: str) -> None:
    err = error(tokenize(setup, body), 400)
    assert err["param"] == param and err["type"] == "invalid_request_error"


def test_a_body_that_is_not_a_json_object_is_a_400(setup: dict) -> None:
    assert error(tokenize(setup, b"[1, 2]"), 400)["code"] == "invalid_json"
    assert error(tokenize(setup, b"{not json"), 400)["code"] == "invalid_json"


def test_without_a_model_the_registrys_default_is_counted(setup: dict) -> None:
    from gateway.models import ModelEntry

    ModelEntry.objects.filter(name="gpt-4").update(is_default=True)
    data = tokenize(setup, {"input": "hello world"}).json()
    assert (data["model"], data["tokens"], data["method"]) == ("gpt-4", 2, "tiktoken:cl100k_base")


def test_remaining_goes_negative_when_the_input_does_not_fit(setup: dict) -> None:
    data = tokenize(setup, {"model": "gpt-4", "input": "hello " * 9000}).json()
    assert data["tokens"] > 8192 and data["remaining"] == 8192 - data["tokens"] < 0
