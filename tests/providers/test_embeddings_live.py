"""Embeddings on Gemini and Workers AI end to end: the official OpenAI SDK -> live gateway -> fake upstreams."""

from __future__ import annotations

import base64
import struct
import time
from typing import Any

import httpx
import openai
import orjson
import pytest

from gateway.models import RequestLog
from tests.conftest import (
    LiveGateway,
    make_fake_provider,
    make_model,
    make_token,
)
from tests.fakes.openai_upstream import fake_vector
from tests.openai_schema import assert_valid

PROVIDERS = ["gemini", "cloudflare"]
UPSTREAM_MODELS = {"gemini": "gemini-embedding-001", "cloudflare": "@cf/baai/bge-base-en-v1.5"}


@pytest.fixture(params=PROVIDERS)
def setup(request: pytest.FixtureRequest, live_gateway: LiveGateway, fakes: dict[str, Any]) -> dict:
    """A gateway whose model `embed` is served by one provider's fake embedding model."""
    kind = request.param
    account = make_fake_provider(kind, fakes[kind], {"gemini": "gemini-main", "cloudflare": "cf-main"}[kind])
    make_model("embed", (account, UPSTREAM_MODELS[kind]), embeddings=True, input_price_per_million="0.1")
    return {"kind": kind, "gateway": live_gateway, "upstream": fakes[kind], "token": make_token()}


def sdk(setup: dict) -> openai.OpenAI:
    return openai.OpenAI(base_url=setup["gateway"].v1, api_key=setup["token"], max_retries=0)


def post(setup: dict, body: dict) -> httpx.Response:
    return httpx.post(f"{setup['gateway'].v1}/embeddings", content=orjson.dumps({"model": "embed", **body}),
                      headers={"Authorization": f"Bearer {setup['token']}"}, timeout=30)


def upstream_texts(setup: dict) -> list[str]:
    """The texts the fake upstream was asked to embed, read from its native request body."""
    body = setup["upstream"].last.json
    if setup["kind"] == "gemini":
        return [r["content"]["parts"][0]["text"] for r in body["requests"]]
    return body["text"]


def logged_row(setup: dict, session: str) -> RequestLog:
    """The embeddings log row of a session: written just after the answer is sent (its usage is estimated
    first), so it is waited for; the session keeps a late row of an earlier test out."""
    deadline = time.monotonic() + 10
    while True:
        setup["gateway"].flush_logs()
        row = RequestLog.objects.filter(endpoint="embeddings", session_id=session).first()
        if row is not None or time.monotonic() > deadline:
            assert row is not None, "no embeddings log row was written"
            return row
        time.sleep(0.02)


def test_sdk_default_base64_vectors_decode_to_the_upstreams_floats(setup: dict) -> None:
    result = sdk(setup).embeddings.create(model="embed", input=["hello world", "bye"])
    assert upstream_texts(setup) == ["hello world", "bye"]
    assert [d.embedding for d in result.data] == [pytest.approx(fake_vector("hello world"), rel=1e-6),
                                                  pytest.approx(fake_vector("bye"), rel=1e-6)]
    assert [d.index for d in result.data] == [0, 1] and result.model == "embed"
    assert result.usage.prompt_tokens > 0 and result.usage.total_tokens == result.usage.prompt_tokens


def test_base64_answer_is_little_endian_float32_in_openais_shape(setup: dict) -> None:
    response = post(setup, {"input": "hi there", "encoding_format": "base64"})
    assert response.status_code == 200, response.text
    data = response.json()
    vector = data["data"][0]["embedding"]
    assert isinstance(vector, str)
    raw = base64.b64decode(vector, validate=True)
    decoded = list(struct.unpack(f"<{len(raw) // 4}f", raw))
    assert decoded == pytest.approx(fake_vector("hi there"), rel=1e-6)
    assert_valid("CreateEmbeddingResponse", {**data, "data": [{**data["data"][0], "embedding": decoded}]})


def test_float_format_returns_lists_valid_against_openais_schema(setup: dict) -> None:
    result = sdk(setup).embeddings.create(model="embed", input="hello", encoding_format="float")
    assert result.data[0].embedding == pytest.approx(fake_vector("hello"))
    response = post(setup, {"input": ["a b", "c"], "encoding_format": "float"})
    assert_valid("CreateEmbeddingResponse", response.json())
    assert [d["embedding"] for d in response.json()["data"]] == [pytest.approx(fake_vector("a b")),
                                                                 pytest.approx(fake_vector("c"))]


def test_the_log_row_has_estimated_prompt_tokens_and_a_cost(setup: dict) -> None:
    session = f"embeddings-log-{setup['kind']}"
    sdk(setup).embeddings.create(model="embed", input=["tiktoken is great!"], extra_headers={"X-SESSION-ID": session})
    row = logged_row(setup, session)
    assert row.status_code == 200 and row.provider_kind == setup["kind"]
    assert row.prompt_tokens > 0 and row.completion_tokens == 0 and row.total_tokens == row.prompt_tokens
    assert row.usage_estimated and row.cost > 0


def test_upstream_errors_keep_openais_envelope(setup: dict) -> None:
    setup["upstream"].fail_next(429)
    with pytest.raises(openai.RateLimitError) as info:
        sdk(setup).embeddings.create(model="embed", input="x")
    assert_valid("ErrorResponse", orjson.loads(info.value.response.content))
    setup["upstream"].fail_next(500)
    with pytest.raises(openai.InternalServerError) as failed:
        sdk(setup).embeddings.create(model="embed", input="x")
    assert failed.value.status_code == 502
    assert_valid("ErrorResponse", orjson.loads(failed.value.response.content))


@pytest.mark.parametrize(("body", "param"), [
    ({"input": ["x"] * 101}, "input"),
    ({"input": [101, 102]}, "input"),
    ({"input": "x", "dimensions": -3}, "dimensions"),
])
def test_inputs_the_provider_cannot_take_are_400_naming_the_parameter(setup: dict, body: dict, param: str) -> None:
    response = post(setup, body)
    assert response.status_code == 400 and response.json()["error"]["param"] == param, response.text
    assert_valid("ErrorResponse", response.json())
    assert setup["upstream"].requests == []


def test_dimensions_shorten_gemini_vectors_and_are_refused_by_workers_ai(setup: dict) -> None:
    response = post(setup, {"input": "short", "dimensions": 4, "encoding_format": "float"})
    if setup["kind"] == "gemini":
        assert response.status_code == 200, response.text
        assert response.json()["data"][0]["embedding"] == pytest.approx(fake_vector("short", 4))
        assert setup["upstream"].last.json["requests"][0]["outputDimensionality"] == 4
    else:
        assert response.status_code == 400 and response.json()["error"]["param"] == "dimensions"
        assert setup["upstream"].requests == []
