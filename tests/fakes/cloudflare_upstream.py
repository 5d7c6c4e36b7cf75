"""A fake Cloudflare Workers AI (REST, native run endpoint) speaking its real wire format.

Wire format: v4 envelopes ``{"result", "success", "errors", "messages"}``, native SSE
(``data: {"response": "...", "p": "..."}`` events, a final ``{"response": "", "usage": {...}}`` event,
then ``data: [DONE]``), Cloudflare error envelopes, tool calls as ``{name, arguments(object)}``.

Behaviour, so tests can predict answers (the same rules as the fake OpenAI):
- the reply is "Echo: <last user text>"; after a `tool` message it is "Tool said: <its content>";
- "call <name>" in the last user message, with a tool of that name offered, returns a tool call;
- `max_tokens` cuts the reply at that many words; without it the cut is at 256 words, like the real
  service's default; the native output carries no finish reason;
- tokens are whitespace-separated words;
- a text-embeddings model (``EMBEDDING_MODELS``) takes ``{"text": string | string[<=100]}`` and returns
  ``{"shape": [n, 8], "data": [fake_vector(text), ...], "pooling": "mean"}`` with no usage, like the
  real models' output schema.

Stricter than documented where that catches translation bugs: message contents must be strings,
only the schema's parameters are accepted, and documented ranges are checked (400, code 5004).
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.openai_upstream import fake_vector
from tests.fakes.server import FakeServer, count_tokens, words

ACCOUNT_ID = "acc123"
DEFAULT_MAX_TOKENS = 256
TOOL_ARGUMENTS = {"location": "Paris"}
MODELS = ["@cf/meta/llama-4-scout-17b-16e-instruct", "@cf/meta/llama-3.1-8b-instruct"]
EMBEDDING_MODELS = ["@cf/baai/bge-base-en-v1.5", "@cf/baai/bge-large-en-v1.5"]
EMBEDDING_DIMENSIONS = 8  # the real models have 768 or 1024; fake_vector gives at most 32
EMBEDDING_PARAMETERS = {"text", "pooling", "truncate_inputs"}
PARAMETERS = {"messages", "prompt", "raw", "lora", "stream", "max_tokens", "temperature", "top_p", "top_k", "seed",
              "repetition_penalty", "frequency_penalty", "presence_penalty", "response_format", "tools", "functions",
              "options"}
RANGES = {"temperature": (0, 5), "top_p": (0, 2), "top_k": (1, 50), "seed": (1, 9999999999),
          "repetition_penalty": (0, 2), "frequency_penalty": (0, 2), "presence_penalty": (0, 2)}

# Cloudflare's error envelopes per status (Workers AI error codes; the 500 code is not documented).
ERRORS = {
    400: (5004, "Invalid data"),
    401: (10000, "Authentication error"),
    403: (10000, "Authentication error"),
    404: (3042, "Invalid model ID"),
    429: (3040, "Capacity temporarily exceeded, please try again."),
    500: (5000, "Internal server error"),
}


def envelope_error(status: int, code: int, message: str) -> web.Response:
    body = {"result": None, "success": False, "errors": [{"code": code, "message": message}], "messages": []}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def plan_reply(body: dict[str, Any]) -> dict[str, Any]:
    """What the fake model answers: text pieces or a tool call, and usage."""
    messages = body["messages"]
    prompt_tokens = sum(count_tokens(m["content"]) for m in messages)
    last = messages[-1]
    offered = {(t.get("function") or t).get("name") for t in body.get("tools") or []}
    if last["role"] == "tool":
        text = f"Tool said: {last['content']}"
    else:
        for name in sorted(n for n in offered if n):
            if f"call {name}" in last["content"]:
                return {"tool_call": {"name": name, "arguments": TOOL_ARGUMENTS}, "prompt_tokens": prompt_tokens,
                        "completion_tokens": 8}
        text = f"Echo: {last['content']}"
    pieces = words(text)[: body.get("max_tokens") or DEFAULT_MAX_TOKENS]
    return {"pieces": pieces, "prompt_tokens": prompt_tokens, "completion_tokens": len(pieces)}


def usage(plan: dict[str, Any]) -> dict[str, int]:
    return {"prompt_tokens": plan["prompt_tokens"], "completion_tokens": plan["completion_tokens"],
            "total_tokens": plan["prompt_tokens"] + plan["completion_tokens"]}


def invalid(body: Any) -> str | None:
    """Why a run body breaks the model schema, or None."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
        return "Type mismatch of '/messages', 'array' not in 'object'"
    for name in body:
        if name not in PARAMETERS:
            return f"Unknown property '/{name}'"
    for i, message in enumerate(body["messages"]):
        if not isinstance(message.get("role"), str) or not isinstance(message.get("content"), str):
            return f"Type mismatch of '/messages/{i}/content', 'string' expected"
    for name, (low, high) in RANGES.items():
        value = body.get(name)
        if value is not None and not (isinstance(value, int | float) and low <= value <= high):
            return f"'/{name}' must be between {low} and {high}"
    if "max_tokens" in body and not (isinstance(body["max_tokens"], int) and body["max_tokens"] > 0):
        return "'/max_tokens' must be a positive integer"
    return None


def embedding_texts(body: Any) -> list[str] | str:
    """The texts of a text-embeddings body, or why the model schema refuses it."""
    if not isinstance(body, dict) or "text" not in body:
        return "Required properties missing: text"
    for name in body:
        if name not in EMBEDDING_PARAMETERS:
            return f"Unknown property '/{name}'"
    text = body["text"]
    items = [text] if isinstance(text, str) else text
    if not isinstance(items, list) or not items or not all(isinstance(t, str) and t for t in items):
        return "Type mismatch of '/text', 'string' or non-empty 'array' of strings expected"
    if len(items) > 100:
        return "'/text' must NOT have more than 100 items"
    return items


class FakeCloudflare(FakeServer):
    def __init__(self, api_token: str, account_id: str = ACCOUNT_ID) -> None:
        super().__init__()
        self.api_token = api_token
        self.account_id = account_id
        self._padding = itertools.cycle(["abcdefgh", "ab", "abcdefghijk", ""])

    @property
    def base_url(self) -> str:
        return f"{self.url}/client/v4"

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/client/v4/accounts/{account}/ai/run/{model:.+}", self.run),
                web.get("/client/v4/accounts/{account}/ai/models/search", self.search)]

    def fail_next(self, status: int) -> None:
        """The next request gets Cloudflare's error envelope for this status."""
        code, message = ERRORS.get(status, ERRORS[500])
        body = {"result": None, "success": False, "errors": [{"code": code, "message": message}], "messages": []}
        self.fail_next_raw(status, orjson.dumps(body))

    def _refused(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization", "") != f"Bearer {self.api_token}":
            return envelope_error(401, 10000, "Authentication error")
        if request.match_info["account"] != self.account_id:
            return envelope_error(404, 7003, f"Could not route to {request.path}, perhaps your object identifier "
                                  "is invalid?")
        return None

    async def search(self, request: web.Request) -> web.Response:
        if refused := self._refused(request):
            return refused
        per_page = int(request.query.get("per_page", "20"))
        found = [{"id": f"model-{i}", "name": name, "description": "A text generation model.",
                  "task": {"id": "task-1", "name": "Text Generation"}} for i, name in enumerate(MODELS)]
        return self.json_response({"result": found[:per_page], "success": True, "errors": [], "messages": [],
                                   "result_info": {"count": min(per_page, len(found)), "page": 1,
                                                   "per_page": per_page, "total_count": len(found)}})

    async def run(self, request: web.Request) -> web.StreamResponse:
        if refused := self._refused(request):
            return refused
        model = request.match_info["model"]
        if model in EMBEDDING_MODELS:
            return self.embed(await request.read())
        if model not in MODELS:
            return envelope_error(400, 5007, f"No such model {model} or task")
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return envelope_error(400, 5004, "Invalid data: the body is not JSON")
        if reason := invalid(body):
            return envelope_error(400, 5004, f"AiError: Bad input: {reason}")
        plan = plan_reply(body)
        if body.get("stream"):
            return await self.sse(request, self._events(plan))
        result: dict[str, Any] = {"response": "".join(plan.get("pieces", [])) or None, "usage": usage(plan)}
        if "tool_call" in plan:
            result["tool_calls"] = [plan["tool_call"]]
        return self.json_response({"result": result, "success": True, "errors": [], "messages": []})

    def embed(self, raw: bytes) -> web.Response:
        try:
            items = embedding_texts(orjson.loads(raw))
        except orjson.JSONDecodeError:
            items = "the body is not JSON"
        if isinstance(items, str):
            return envelope_error(400, 5004, f"AiError: Bad input: {items}")
        data = [fake_vector(text, EMBEDDING_DIMENSIONS) for text in items]
        return self.json_response({"result": {"shape": [len(data), EMBEDDING_DIMENSIONS], "data": data,
                                              "pooling": "mean"}, "success": True, "errors": [], "messages": []})

    def _events(self, plan: dict[str, Any]) -> list[bytes]:
        def event(payload: dict[str, Any]) -> bytes:
            return b"data: " + orjson.dumps(payload) + b"\n\n"

        if "tool_call" in plan:
            call = plan["tool_call"]
            events = [event({"tool_calls": [{"id": "call123", "type": "function", "index": 0, "function": {
                "name": call["name"], "arguments": orjson.dumps(call["arguments"]).decode()}}]})]
        else:
            events = [event({"response": piece, "p": next(self._padding)}) for piece in plan["pieces"]]
        return [*events, event({"response": "", "usage": usage(plan)}), b"data: [DONE]\n\n"]
