"""/v1/completions and /v1/embeddings end to end: the official SDK against a live gateway and the fake upstream."""

from __future__ import annotations

import base64
import struct

import httpx
import openai
import orjson
import pytest

from gateway.models import RequestLog
from tests.conftest import make_model
from tests.fakes.openai_upstream import fake_vector
from tests.openai_schema import assert_valid, assert_valid_completion_sse


@pytest.fixture
def setup(openai_setup: dict) -> dict:
    account = openai_setup["account"]
    make_model("gpt-3.5-turbo-instruct", (account, "gpt-3.5-turbo-instruct"), input_price_per_million="1.5",
               output_price_per_million="2")
    make_model("text-embedding-3-small", (account, "text-embedding-3-small"), input_price_per_million="0.02",
               embeddings=True)
    return openai_setup


def sdk(setup: dict) -> openai.OpenAI:
    return openai.OpenAI(base_url=setup["gateway"].v1, api_key=setup["token"], max_retries=0)


def post(setup: dict, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{setup['gateway'].v1}/{path}", json=body, headers={"X-AUTH-TOKEN": setup["token"]})


def test_completion_through_the_sdk_and_the_schema(setup: dict) -> None:
    reply = sdk(setup).completions.create(model="gpt-3.5-turbo-instruct", prompt="Say this is a test", max_tokens=7)
    assert reply.choices[0].text == "Echo: Say this is a test" and reply.usage.total_tokens > 0
    raw = post(setup, "completions", {"model": "gpt-3.5-turbo-instruct", "prompt": ["one two"], "echo": True})
    assert_valid("CreateCompletionResponse", raw.json())
    assert raw.json()["choices"][0]["text"] == "one twoEcho: one two"
    assert setup["upstream"].last.path == "/v1/completions"


def test_completion_stream_with_and_without_usage(setup: dict) -> None:
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": "a b c", "stream": True}
    plain = assert_valid_completion_sse(post(setup, "completions", body).text)
    assert "".join(e["choices"][0]["text"] for e in plain) == "Echo: a b c" and all(e["choices"] for e in plain)
    stream = sdk(setup).completions.create(model="gpt-3.5-turbo-instruct", prompt="a b c", stream=True,
                                           stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[-1].usage.completion_tokens == 4
    setup["gateway"].flush_logs()
    rows = list(RequestLog.objects.filter(endpoint="completions").order_by("created_at"))
    assert [r.completion_tokens for r in rows] == [4, 4] and all(r.stream for r in rows)


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "gpt-3.5-turbo-instruct"}, "prompt"),
    ({"model": "gpt-3.5-turbo-instruct", "prompt": {"text": "x"}}, "prompt"),
    ({"model": "gpt-3.5-turbo-instruct", "prompt": [5, -1]}, "prompt"),
    ({"model": "gpt-3.5-turbo-instruct", "prompt": "x", "stream": "yes"}, "stream"),
])
def test_bad_completion_requests_are_400_with_param(setup: dict, body: dict, param: str) -> None:
    response = post(setup, "completions", body)
    assert response.status_code == 400 and response.json()["error"]["param"] == param
    assert_valid("ErrorResponse", response.json())
    assert setup["upstream"].requests == []


def test_embeddings_from_the_sdk_with_its_default_base64_encoding(setup: dict) -> None:
    result = sdk(setup).embeddings.create(model="text-embedding-3-small", input=["hello world", "bye"])
    assert setup["upstream"].last.json["encoding_format"] == "base64"  # what the SDK sends by default
    assert [d.embedding for d in result.data] == [pytest.approx(fake_vector("hello world")),
                                                  pytest.approx(fake_vector("bye"))]
    assert result.usage.prompt_tokens == 3


def test_embeddings_as_float_lists_and_base64_float32(setup: dict) -> None:
    floats = post(setup, "embeddings", {"model": "text-embedding-3-small", "input": "hi", "encoding_format": "float"})
    assert_valid("CreateEmbeddingResponse", floats.json())
    assert floats.json()["data"][0]["embedding"] == pytest.approx(fake_vector("hi"))
    b64 = post(setup, "embeddings", {"model": "text-embedding-3-small", "input": "hi", "encoding_format": "base64"})
    raw = base64.b64decode(b64.json()["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == pytest.approx(fake_vector("hi"))
    setup["gateway"].flush_logs()
    row = RequestLog.objects.filter(endpoint="embeddings").latest("created_at")
    assert row.prompt_tokens == 1 and row.cost > 0 and row.status_code == 200


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "text-embedding-3-small"}, "input"),
    ({"model": "text-embedding-3-small", "input": ""}, "input"),
    ({"model": "text-embedding-3-small", "input": [1.5]}, "input"),
    ({"model": "text-embedding-3-small", "input": [[1, -2]]}, "input"),
    ({"model": "text-embedding-3-small", "input": "x", "encoding_format": "int8"}, "encoding_format"),
])
def test_bad_embedding_requests_are_400_with_param(setup: dict, body: dict, param: str) -> None:
    response = post(setup, "embeddings", body)
    assert response.status_code == 400 and response.json()["error"]["param"] == param
    assert setup["upstream"].requests == []


def test_embeddings_errors_keep_openais_envelope(setup: dict) -> None:
    setup["upstream"].fail_next(429)
    with pytest.raises(openai.RateLimitError) as info:
        sdk(setup).embeddings.create(model="text-embedding-3-small", input="x")
    assert_valid("ErrorResponse", orjson.loads(info.value.response.content))
