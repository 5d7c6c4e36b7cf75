"""Embeddings on Gemini and Workers AI without a server: the OpenAI embedding list, request mapping, errors."""

from __future__ import annotations

import base64
import struct

import orjson
import pytest

from providers import embeddings
from providers.base import Account, ProviderError
from providers.cloudflare.adapter import CloudflareAdapter
from providers.gemini.adapter import GeminiAdapter
from tests.openai_schema import assert_valid

GEMINI_KEY = "AIzaSyD-verysecretgeminikey0123456789"
CF_TOKEN = "cf-api-token-verysecret-0123456789"
BGE = "@cf/baai/bge-base-en-v1.5"
VECTORS = [[0.25, -1.5, 3.0], [0.1, 0.2, 0.3]]


def gemini() -> GeminiAdapter:
    return GeminiAdapter(Account("gemini-main", "gemini", "https://generativelanguage.googleapis.com/v1beta/",
                                 GEMINI_KEY))


def cloudflare() -> CloudflareAdapter:
    return CloudflareAdapter(Account("cf-main", "cloudflare", "", CF_TOKEN, {"account_id": "acc123"}))


def assert_valid_list(data: dict) -> None:
    """OpenAI's schema only models float lists: base64 vectors are checked decoded (little-endian float32)."""
    def floats(item: dict) -> dict:
        vector = item.get("embedding")
        if isinstance(vector, str):
            raw = base64.b64decode(vector, validate=True)
            vector = list(struct.unpack(f"<{len(raw) // 4}f", raw))
        return {**item, "embedding": vector}

    assert_valid("CreateEmbeddingResponse", {**data, "data": [floats(d) for d in data["data"]]})


def refused(call, *args) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        call(*args)
    assert info.value.status == 400 and info.value.type == "invalid_request_error"
    return info.value


# -- the OpenAI embedding list ---------------------------------------------------------------------

def test_float_format_and_no_format_give_lists_in_input_order() -> None:
    for request in ({"input": ["a", "b"]}, {"input": ["a", "b"], "encoding_format": "float"}):
        data = orjson.loads(embeddings.embedding_list(VECTORS, "my-embed", request, "acct").body)
        assert_valid("CreateEmbeddingResponse", data)
        assert [d["embedding"] for d in data["data"]] == VECTORS
        assert [d["index"] for d in data["data"]] == [0, 1] and data["model"] == "my-embed"


def test_base64_is_little_endian_float32_that_round_trips() -> None:
    data = orjson.loads(embeddings.embedding_list(VECTORS, "m", {"input": ["a", "b"], "encoding_format": "base64"},
                                                  "acct").body)
    assert_valid_list(data)
    raw = base64.b64decode(data["data"][0]["embedding"])
    assert raw == struct.pack("<3f", 0.25, -1.5, 3.0)  # exactly representable: byte-exact
    second = struct.unpack("<3f", base64.b64decode(data["data"][1]["embedding"]))
    assert second == pytest.approx(VECTORS[1], rel=1e-7)


def test_the_answer_carries_a_characters_over_four_usage_estimate_and_leaves_logging_to_the_gateway() -> None:
    result = embeddings.embedding_list([[1.0], [2.0]], "m", {"input": ["abcdefghi", "x"]}, "acct")
    assert orjson.loads(result.body)["usage"] == {"prompt_tokens": 3 + 1, "total_tokens": 4}
    assert result.usage is None  # the gateway logs its tokenizer estimate, marked as estimated


@pytest.mark.parametrize("vectors", [
    [[1.0]],  # fewer vectors than inputs
    [[1.0], [2.0], [3.0]],  # more
    [[1.0], ["x"]],  # not numbers
    [[1.0], []],  # empty
    None,
])
def test_wrong_upstream_vectors_are_a_502(vectors: object) -> None:
    with pytest.raises(ProviderError) as info:
        embeddings.embedding_list(vectors, "m", {"input": ["a", "b"]}, "acct")
    assert info.value.status == 502 and info.value.code == "upstream_bad_response"


# -- Gemini ------------------------------------------------------------------------------------------

def test_gemini_request_is_a_batch_of_embed_content_requests() -> None:
    request = gemini().embeddings_request({"input": ["hello", "world"], "dimensions": 256, "user": "u1",
                                           "encoding_format": "base64"}, "models/gemini-embedding-001")
    assert request.method == "POST"
    assert request.url == ("https://generativelanguage.googleapis.com/v1beta/models/gemini-embedding-001"
                           ":batchEmbedContents")
    assert request.headers["x-goog-api-key"] == GEMINI_KEY and GEMINI_KEY not in request.url
    assert orjson.loads(request.body) == {"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 256},
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "world"}]}, "outputDimensionality": 256},
    ]}


def test_gemini_single_string_input_without_dimensions() -> None:
    body = orjson.loads(gemini().embeddings_request({"input": "one"}, "text-embedding-004").body)
    assert body == {"requests": [{"model": "models/text-embedding-004", "content": {"parts": [{"text": "one"}]}}]}


def test_gemini_answer_becomes_an_openai_embedding_list() -> None:
    upstream = orjson.dumps({"embeddings": [{"values": VECTORS[0]}, {"values": VECTORS[1]}]})
    result = gemini().embeddings_result(upstream, "gem-embed", {"model": "gem-embed", "input": ["a", "b"]})
    data = orjson.loads(result.body)
    assert_valid("CreateEmbeddingResponse", data)
    assert [d["embedding"] for d in data["data"]] == VECTORS


@pytest.mark.parametrize(("body", "param"), [
    ({"input": [1, 2, 3]}, "input"),  # token ids
    ({"input": [[1, 2], [3]]}, "input"),
    ({"input": ["x"] * 101}, "input"),  # over Gemini's 100 per batch
    ({"input": "x", "dimensions": 0}, "dimensions"),
    ({"input": "x", "dimensions": "256"}, "dimensions"),
    ({"input": "x", "task_type": "RETRIEVAL_QUERY"}, "task_type"),  # not an OpenAI parameter
])
def test_gemini_refuses_what_it_cannot_embed_naming_the_parameter(body: dict, param: str) -> None:
    assert refused(gemini().embeddings_request, body, "gemini-embedding-001").param == param


def test_gemini_takes_exactly_100_inputs() -> None:
    body = orjson.loads(gemini().embeddings_request({"input": ["x"] * 100}, "gemini-embedding-001").body)
    assert len(body["requests"]) == 100


def test_gemini_embedding_errors_use_googles_envelope() -> None:
    error = gemini().error(400, orjson.dumps({"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                                         "message": "* BatchEmbedContentsRequest.requests: bad"}}))
    assert error.status == 400 and "BatchEmbedContentsRequest" in error.message


# -- Cloudflare Workers AI -------------------------------------------------------------------------

def test_workers_ai_request_is_the_run_endpoint_with_text() -> None:
    request = cloudflare().embeddings_request({"input": ["a", "b"], "user": "u1", "encoding_format": "float"}, BGE)
    assert request.url == f"https://api.cloudflare.com/client/v4/accounts/acc123/ai/run/{BGE}"
    assert request.headers["Authorization"] == f"Bearer {CF_TOKEN}"
    assert orjson.loads(request.body) == {"text": ["a", "b"]}
    assert orjson.loads(cloudflare().embeddings_request({"input": "solo"}, BGE).body) == {"text": ["solo"]}


def test_workers_ai_envelope_becomes_an_openai_embedding_list() -> None:
    # A text-embeddings result: {"shape": [n, d], "data": [[...], ...]} inside the v4 envelope.
    upstream = orjson.dumps({"result": {"shape": [2, 3], "data": VECTORS, "pooling": "mean"}, "success": True,
                             "errors": [], "messages": []})
    result = cloudflare().embeddings_result(upstream, "bge", {"input": ["a", "b"], "encoding_format": "base64"})
    data = orjson.loads(result.body)
    assert_valid_list(data)
    assert struct.unpack("<3f", base64.b64decode(data["data"][0]["embedding"])) == (0.25, -1.5, 3.0)


def test_workers_ai_failure_inside_a_200_is_a_502() -> None:
    upstream = orjson.dumps({"result": None, "success": False, "errors": [{"code": 5004, "message": "bad"}]})
    with pytest.raises(ProviderError) as info:
        cloudflare().embeddings_result(upstream, "bge", {"input": "a"})
    assert info.value.status == 502 and "bad" in info.value.message


@pytest.mark.parametrize(("body", "param"), [
    ({"input": ["x"] * 101}, "input"),  # the schemas take at most 100 texts
    ({"input": [5, 6]}, "input"),
    ({"input": "x", "dimensions": 256}, "dimensions"),  # fixed-size models
    ({"input": "x", "pooling": "cls"}, "pooling"),
])
def test_workers_ai_refuses_what_it_cannot_embed_naming_the_parameter(body: dict, param: str) -> None:
    assert refused(cloudflare().embeddings_request, body, BGE).param == param


def test_workers_ai_error_codes_keep_their_meaning() -> None:
    body = orjson.dumps({"result": None, "success": False, "errors": [{"code": 3040, "message": "Capacity"}]})
    assert cloudflare().error(500, body).status == 429
