"""OpenAI's ``/embeddings`` on providers whose embedding API has another shape (pure translation).

Shared: ``texts`` (the client's ``input``, checked), ``embedding_list`` (float vectors as OpenAI's
embedding list, ``encoding_format`` honoured). Per provider, called from thin adapter methods:
Gemini's ``batchEmbedContents`` and Workers AI's text-embeddings run body and result.

Usage: Gemini's and Workers AI's embedding endpoints report no token counts, but OpenAI's answer
must carry ``usage``. The answer's body gets an estimate of about four characters per token
(``estimated_tokens``, OpenAI's published rule of thumb for English text); the ``ChatResult``
carries no usage, so the gateway logs and bills its own tokenizer estimate, marked as estimated.
"""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

import orjson

from providers.base import ChatResult, ProviderError
from providers.parameters import UNSUPPORTED_VALUE, ParameterPolicy, Refuse, invalid, refusal, truthy

CHARACTERS_PER_TOKEN = 4  # OpenAI's rule of thumb; only for the usage shown in the answer

# The fields of OpenAI's CreateEmbeddingRequest besides ``model`` (removed by the gateway); unknown
# fields are refused as OpenAI itself refuses them. ``user`` does not change the vectors.
_NOT_EMBEDDINGS = "it is not a recognised embeddings parameter."
_UNKNOWN = Refuse(why=_NOT_EMBEDDINGS)
_STREAM = Refuse(truthy, _NOT_EMBEDDINGS)  # a false ``stream`` is harmless


def texts(body: dict[str, Any], provider: str, max_inputs: int) -> list[str]:
    """The client's ``input`` as a list of texts, or a 400 naming what the provider cannot take.

    Token-id arrays are refused because only OpenAI's tokenizers give them a meaning.
    """
    value = body.get("input")
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(item, str) for item in items):
        raise refusal(provider, "input", "it embeds text only: 'input' must be a string or an array of strings "
                      "(token-id arrays cannot be sent).", subject="This 'input'", code=UNSUPPORTED_VALUE)
    if len(items) > max_inputs:
        raise invalid("input", f"{provider} embeds at most {max_inputs} inputs per request; this one has "
                      f"{len(items)}. Send them in smaller batches.", "too_many_inputs")
    return items


def dimensions(body: dict[str, Any]) -> int | None:
    """The requested ``dimensions``: a positive integer, or None when absent."""
    value = body.get("dimensions")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise invalid("dimensions", "'dimensions' must be a positive integer.")
    return value


def estimated_tokens(items: list[str]) -> int:
    """About four characters per token, at least one token per input."""
    return sum(max(1, math.ceil(len(item) / CHARACTERS_PER_TOKEN)) for item in items)


def encode(vector: list[float], encoding_format: Any) -> list[float] | str:
    """``"base64"``: base64 of little-endian float32 values (what the official SDK decodes); else the list."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


def _vector(value: Any) -> list[float] | None:
    if not isinstance(value, list) or not value:
        return None
    if not all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in value):
        return None
    return [float(x) for x in value]


def _count(request: dict[str, Any]) -> tuple[int, list[str]]:
    items = request.get("input")
    listed = [items] if isinstance(items, str) else [str(i) for i in items] if isinstance(items, list) else []
    return len(listed), listed


def embedding_list(vectors: Any, public_model: str, request: dict[str, Any], account: str) -> ChatResult:
    """OpenAI's embedding list for the upstream's vectors (one per input of ``request``, in order), or a 502."""
    count, items = _count(request)
    checked = [_vector(v) for v in vectors] if isinstance(vectors, list) else []
    if len(checked) != count or any(v is None for v in checked):
        raise ProviderError(502, f"The upstream '{account}' returned {len(checked)} embeddings for {count} inputs, "
                            "or some were not lists of numbers.", "upstream_error", "upstream_bad_response")
    encoding_format = request.get("encoding_format")
    data = [{"object": "embedding", "index": i, "embedding": encode(vector, encoding_format)}
            for i, vector in enumerate(checked) if vector is not None]
    tokens = estimated_tokens(items)
    body = {"object": "list", "data": data, "model": public_model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    return ChatResult(orjson.dumps(body), None)


# -- Gemini: models/{model}:batchEmbedContents --------------------------------------------------------

GEMINI_MAX_INPUTS = 100  # "BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch"
GEMINI_PARAMETERS = ParameterPolicy(mapped=frozenset({"input", "encoding_format", "dimensions"}),
                                    dropped=frozenset({"user"}), refused={"stream": _STREAM}, unknown=_UNKNOWN)


def gemini_request(body: dict[str, Any], model: str, provider: str) -> dict[str, Any]:
    """A ``BatchEmbedContentsRequest``: one ``EmbedContentRequest`` per input, ``dimensions`` as
    ``outputDimensionality``."""
    GEMINI_PARAMETERS.check(body, provider)
    size = dimensions(body)
    requests = []
    for text in texts(body, provider, GEMINI_MAX_INPUTS):
        one: dict[str, Any] = {"model": f"models/{model}", "content": {"parts": [{"text": text}]}}
        if size is not None:
            one["outputDimensionality"] = size
        requests.append(one)
    return {"requests": requests}


def gemini_vectors(data: Any) -> Any:
    """The vectors of a ``BatchEmbedContentsResponse``: ``{"embeddings": [{"values": [...]}, ...]}``."""
    found = data.get("embeddings") if isinstance(data, dict) else None
    return [e.get("values") if isinstance(e, dict) else None for e in found] if isinstance(found, list) else None


# -- Cloudflare Workers AI: ai/run/{model} with a text-embeddings model --------------------------------

WORKERS_AI_MAX_INPUTS = 100  # the text-embeddings schemas take at most 100 texts
WORKERS_AI_PARAMETERS = ParameterPolicy(
    mapped=frozenset({"input", "encoding_format"}), dropped=frozenset({"user"}),
    refused={"stream": _STREAM, "dimensions": Refuse(why="the embedding models have a fixed size.")},
    unknown=_UNKNOWN,
)


def workers_ai_request(body: dict[str, Any], provider: str) -> dict[str, Any]:
    """``{"text": [...]}``; the models have a fixed size, so ``dimensions`` is refused."""
    WORKERS_AI_PARAMETERS.check(body, provider)
    return {"text": texts(body, provider, WORKERS_AI_MAX_INPUTS)}


def workers_ai_vectors(result: dict[str, Any]) -> Any:
    """The vectors of a text-embeddings result: ``{"shape": [n, d], "data": [[...], ...], "pooling": ...}``."""
    return result.get("data")
