"""A fake Gemini upstream speaking the native wire format: generateContent, SSE with alt=sse, Google errors.

Behaviour, so tests can predict answers (the same rules as the fake OpenAI):
- the reply is "Echo: <last user text>" (plus " [<mimeType>]" per inline file in that message);
  after a ``functionResponse`` it is "Tool said: <response.result, or the response as JSON>";
- "call <name>" in the last user message, with a function of that name declared, returns a
  ``functionCall`` (args {"location": "Paris"}, with a ``thoughtSignature`` like Gemini 3);
- ``maxOutputTokens`` cuts the reply at that many words (finishReason MAX_TOKENS);
- "forbidden" in the last user text ends the answer with finishReason SAFETY and no content;
  "prohibited" blocks the prompt: no candidates, ``promptFeedback.blockReason`` PROHIBITED_CONTENT;
- ``candidateCount`` n returns n identical candidates;
- tokens are whitespace-separated words; stream chunks carry the cumulative ``usageMetadata``;
- ``batchEmbedContents`` on an embedding model (``EMBEDDING_MODELS``) returns ``fake_vector(text,
  outputDimensionality or 8)`` per request, and like the real API no token counts; more than 100
  requests, a request naming another model, unknown fields or an empty text get 400 INVALID_ARGUMENT.
Like the real API it refuses unknown request fields, roles other than user/model and bad base64
with 400 INVALID_ARGUMENT, a wrong key with 400 API_KEY_INVALID and a missing key with 403.
"""

from __future__ import annotations

import base64
import binascii
import itertools
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.openai_upstream import fake_vector
from tests.fakes.server import FakeServer, count_tokens, words

TOOL_ARGS = {"location": "Paris"}
SIGNATURE = "c2lnbmVkLWJ5LWZha2UtZ2VtaW5p"
MODELS = ["gemini-2.5-flash", "gemini-2.5-pro"]
EMBEDDING_MODELS = ["gemini-embedding-001", "text-embedding-004"]
EMBEDDING_DIMENSIONS = 8  # the fake's default size (fake_vector gives at most 32 values)
EMBED_FIELDS = {"model", "content", "taskType", "title", "outputDimensionality"}
REQUEST_FIELDS = {"contents", "systemInstruction", "generationConfig", "tools", "toolConfig", "safetySettings",
                  "cachedContent"}
CONFIG_FIELDS = {"temperature", "topP", "topK", "maxOutputTokens", "stopSequences", "candidateCount",
                 "presencePenalty", "frequencyPenalty", "seed", "responseMimeType", "responseSchema",
                 "responseJsonSchema", "thinkingConfig", "responseLogprobs", "logprobs"}


def google_error(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return orjson.dumps({"error": error})


def key_invalid_body() -> bytes:
    return google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
         "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}])


ERRORS = {
    400: lambda: google_error(400, "INVALID_ARGUMENT", "Invalid value at 'generation_config.temperature' (TYPE_FLOAT)."),
    403: lambda: google_error(403, "PERMISSION_DENIED", "Permission denied: Consumer has been suspended."),
    404: lambda: google_error(404, "NOT_FOUND", "models/x is not found for API version v1beta."),
    429: lambda: google_error(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.", [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
         "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                         "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]),
    500: lambda: google_error(500, "INTERNAL", "An internal error has occurred."),
    503: lambda: google_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
}


class BadRequest(Exception):
    pass


def text_of(parts: list[dict[str, Any]]) -> str:
    return "".join(part.get("text", "") for part in parts)


def check(body: dict[str, Any]) -> None:
    """What the real API refuses with 400 INVALID_ARGUMENT, so adapter mistakes fail loudly."""
    for name in body:
        if name not in REQUEST_FIELDS:
            raise BadRequest(f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.')
    for name in body.get("generationConfig") or {}:
        if name not in CONFIG_FIELDS:
            raise BadRequest(f'Invalid JSON payload received. Unknown name "{name}" at \'generation_config\'.')
    if not body.get("contents"):
        raise BadRequest("* GenerateContentRequest.contents: contents is not specified")
    for i, content in enumerate(body["contents"]):
        if content.get("role") not in ("user", "model"):
            raise BadRequest(f"Please use a valid role: user, model. (contents[{i}])")
        if not content.get("parts"):
            raise BadRequest(f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.")
        for part in content["parts"]:
            if "inlineData" in part:
                try:
                    base64.b64decode(part["inlineData"]["data"], validate=True)
                except (binascii.Error, KeyError) as exc:
                    raise BadRequest(f"Invalid value at 'contents[{i}].parts.inline_data.data' (TYPE_BYTES), "
                                     "Base64 decoding failed.") from exc
            if "functionResponse" in part and not part["functionResponse"].get("name"):
                raise BadRequest("* GenerateContentRequest.contents.parts.function_response.name: Name cannot be empty.")


def embed_requests(model: str, body: dict[str, Any]) -> list[tuple[str, int]]:
    """(text, size) per request of a ``BatchEmbedContentsRequest``, or what the real API refuses."""
    if set(body) - {"requests"}:
        raise BadRequest(f'Invalid JSON payload received. Unknown name "{sorted(set(body) - {"requests"})[0]}".')
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise BadRequest("* BatchEmbedContentsRequest.requests: requests is not specified")
    if len(requests) > 100:
        raise BadRequest("* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch")
    out = []
    for i, one in enumerate(requests):
        if set(one) - EMBED_FIELDS:
            raise BadRequest(f'Invalid JSON payload received. Unknown name at \'requests[{i}]\'.')
        if one.get("model") != f"models/{model}":
            raise BadRequest(f"* BatchEmbedContentsRequest.requests[{i}].model: the model must match models/{model}")
        text = text_of((one.get("content") or {}).get("parts") or [])
        if not text:
            raise BadRequest(f"* BatchEmbedContentsRequest.requests[{i}].content: contents must not be empty")
        out.append((text, int(one.get("outputDimensionality") or EMBEDDING_DIMENSIONS)))
    return out


def plan_reply(body: dict[str, Any]) -> dict[str, Any]:
    """What the fake model answers: text pieces, a function call or a block, and the token counts."""
    contents = body["contents"]
    every = [p for c in contents for p in c["parts"]] + (body.get("systemInstruction") or {}).get("parts", [])
    prompt_tokens = sum(count_tokens(p.get("text") or orjson.dumps(p).decode()) for p in every)
    config = body.get("generationConfig") or {}
    plan: dict[str, Any] = {"prompt_tokens": prompt_tokens, "candidates": int(config.get("candidateCount") or 1)}
    last = contents[-1]["parts"]
    responses = [p["functionResponse"] for p in last if "functionResponse" in p]
    said = text_of(last)
    declared = {d["name"] for tool in body.get("tools") or [] for d in tool.get("functionDeclarations") or []}
    if responses:
        result = responses[-1].get("response") or {}
        text = f"Tool said: {result['result'] if set(result) == {'result'} else orjson.dumps(result).decode()}"
    elif "prohibited" in said:
        return {**plan, "blocked": "PROHIBITED_CONTENT"}
    elif "forbidden" in said:
        return {**plan, "pieces": [], "finish": "SAFETY", "completion_tokens": 0}
    else:
        for name in sorted(declared):
            if f"call {name}" in said:
                return {**plan, "call": name, "finish": "STOP", "completion_tokens": 8}
        files = "".join(f" [{p['inlineData']['mimeType']}]" for p in last if "inlineData" in p)
        text = f"Echo: {said}{files}"
    pieces = words(text)
    limit = config.get("maxOutputTokens")
    finish = "STOP"
    if limit and len(pieces) > limit:
        pieces, finish = pieces[:limit], "MAX_TOKENS"
    return {**plan, "pieces": pieces, "finish": finish, "completion_tokens": len(pieces)}


def usage_metadata(plan: dict[str, Any], completion_tokens: int | None = None) -> dict[str, Any]:
    prompt = plan["prompt_tokens"]
    done = plan.get("completion_tokens", 0) if completion_tokens is None else completion_tokens
    done *= plan["candidates"]
    meta = {"promptTokenCount": prompt, "totalTokenCount": prompt + done,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]}
    if done:
        meta["candidatesTokenCount"] = done
    return meta


class FakeGemini(FakeServer):
    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1beta"

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1beta/models/{target}", self.generate), web.get("/v1beta/models", self.models)]

    def fail_next(self, status: int, key_invalid: bool = False) -> None:
        """The next request gets Google's error body for this status (or the 400 API_KEY_INVALID one)."""
        self.fail_next_raw(status, key_invalid_body() if key_invalid else ERRORS.get(status, ERRORS[500])())

    def _denied(self, request: web.Request) -> web.Response | None:
        given = request.headers.get("x-goog-api-key")
        if given is None:
            body = google_error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers (callers "
                                "without established identity). Please use API Key or other form of API consumer "
                                "identity to call this API.")
            return web.Response(status=403, body=body, content_type="application/json")
        if given != self.api_key:
            return web.Response(status=400, body=key_invalid_body(), content_type="application/json")
        return None

    async def models(self, request: web.Request) -> web.Response:
        if denied := self._denied(request):
            return denied
        return self.json_response({"models": [
            {"name": f"models/{m}", "version": "2.5", "displayName": m, "inputTokenLimit": 1048576,
             "outputTokenLimit": 65536, "supportedGenerationMethods": ["generateContent", "countTokens"]}
            for m in MODELS]})

    async def generate(self, request: web.Request) -> web.StreamResponse:
        if denied := self._denied(request):
            return denied
        model, _, method = request.match_info["target"].partition(":")
        if method == "batchEmbedContents":
            return self.embed(model, orjson.loads(await request.read()))
        if method not in ("generateContent", "streamGenerateContent"):
            return web.Response(status=404, body=google_error(404, "NOT_FOUND", "Method not found."),
                                content_type="application/json")
        body = orjson.loads(await request.read())
        try:
            check(body)
        except BadRequest as exc:
            return web.Response(status=400, body=google_error(400, "INVALID_ARGUMENT", str(exc)),
                                content_type="application/json")
        plan = plan_reply(body)
        base = {"modelVersion": model, "responseId": f"fakeResp{next(self._ids):04d}"}
        if method == "streamGenerateContent":
            if request.query.get("alt") != "sse":
                return web.Response(status=400, body=google_error(400, "INVALID_ARGUMENT", "This fake streams only SSE."),
                                    content_type="application/json")
            return await self.sse(request, [b"data: " + orjson.dumps(c) + b"\r\n\r\n" for c in self._chunks(base, plan)])
        if plan.get("blocked"):
            return self.json_response({**base, "promptFeedback": {"blockReason": plan["blocked"]},
                                       "usageMetadata": usage_metadata(plan)})
        parts = [self._call_part(plan)] if "call" in plan else [{"text": "".join(plan["pieces"])}]
        return self.json_response({**base, "candidates": self._candidates(plan, parts, plan["finish"]),
                                   "usageMetadata": usage_metadata(plan)})

    def embed(self, model: str, body: dict[str, Any]) -> web.Response:
        if model not in EMBEDDING_MODELS:
            return web.Response(status=404, body=google_error(404, "NOT_FOUND", f"models/{model} is not found for API "
                                "version v1beta, or is not supported for embedContent."), content_type="application/json")
        try:
            vectors = [fake_vector(text, size) for text, size in embed_requests(model, body)]
        except BadRequest as exc:
            return web.Response(status=400, body=google_error(400, "INVALID_ARGUMENT", str(exc)),
                                content_type="application/json")
        return self.json_response({"embeddings": [{"values": v} for v in vectors]})

    @staticmethod
    def _call_part(plan: dict[str, Any]) -> dict[str, Any]:
        return {"functionCall": {"name": plan["call"], "args": TOOL_ARGS}, "thoughtSignature": SIGNATURE}

    @staticmethod
    def _candidates(plan: dict[str, Any], parts: list[dict[str, Any]], finish: str | None) -> list[dict[str, Any]]:
        out = []
        for index in range(plan["candidates"]):
            candidate: dict[str, Any] = {"index": index}
            if parts:
                candidate["content"] = {"parts": parts, "role": "model"}
            if finish:
                candidate["finishReason"] = finish
            if finish == "SAFETY":
                candidate["safetyRatings"] = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                                               "probability": "HIGH", "blocked": True}]
            out.append(candidate)
        return out

    def _chunks(self, base: dict[str, Any], plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if plan.get("blocked"):
            yield {**base, "promptFeedback": {"blockReason": plan["blocked"]}, "usageMetadata": usage_metadata(plan, 0)}
            return
        if "call" in plan:
            yield {**base, "candidates": self._candidates(plan, [self._call_part(plan)], "STOP"),
                   "usageMetadata": usage_metadata(plan)}
            return
        pieces = plan["pieces"]
        if not pieces:
            yield {**base, "candidates": self._candidates(plan, [], plan["finish"]), "usageMetadata": usage_metadata(plan)}
            return
        for n, piece in enumerate(pieces, 1):
            finish = plan["finish"] if n == len(pieces) else None
            yield {**base, "candidates": self._candidates(plan, [{"text": piece}], finish),
                   "usageMetadata": usage_metadata(plan, n)}
