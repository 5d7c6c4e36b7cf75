"""A fake Anthropic Messages API upstream speaking the real wire format.

It checks what the real API checks that a gateway could get wrong: `x-api-key`, `anthropic-version`,
a required `max_tokens`, no unknown top-level fields, user/assistant turns that alternate and start
with the user, no empty text blocks, tool results that answer the previous turn's tool uses and
come first in their turn, a temperature from 0 to 1.

Behaviour, so tests can predict answers (tokens are whitespace-separated words):
- the reply is "Echo: <last user text>", plus " [image: base64 image/png]" / " [image: url <url>]" for
  each image in that turn; after a `tool_result` it is "Tool said: <its content>";
- "call <name>" with a tool of that name offered (and tool_choice not "none") returns the text
  "Calling <name>." and a `tool_use` block with input {"location": "Paris"} (stop_reason tool_use);
- the word "forbidden" gets "I can't help with that." and stop_reason "refusal";
- `/v1/messages/count_tokens` answers the `input_tokens` a `/v1/messages` request would report;
- a stop sequence in the reply cuts it there (stop_reason stop_sequence); `max_tokens` cuts it
  at that many words (stop_reason max_tokens).
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tests.fakes.server import FakeServer, count_tokens, words

API_VERSION = "2023-06-01"
# The versions the fake accepts: the gateway's own and the one Anthropic's current SDK sends.
API_VERSIONS = frozenset({API_VERSION, "2026-10-21"})
TOOL_INPUT = {"location": "Paris"}
TOOL_USE_ID = "toolu_fake_0001"
MESSAGE_ID = "msg_fake_0001"
MODELS = ["claude-sonnet-4-20250514", "claude-3-5-haiku-20241022"]
FIELDS = frozenset({"model", "messages", "max_tokens", "system", "temperature", "top_p", "top_k", "stop_sequences",
                    "stream", "metadata", "tools", "tool_choice", "thinking", "service_tier", "context_management",
                    "output_config"})
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

ERRORS = {
    400: ("invalid_request_error", "messages: text content blocks must be non-empty"),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "model: claude-nonexistent"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


def error_body(type_: str, message: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": type_, "message": message}, "request_id": "req_fake0001"})


class BadRequest(Exception):
    pass


def blocks_of(content: Any) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def text_of(content: Any) -> str:
    if content is None:
        return ""
    return " ".join(b.get("text", "") for b in blocks_of(content) if b.get("type") == "text")


def _check_blocks(i: int, role: str, content: Any, previous_tool_uses: set[str]) -> set[str]:
    """Raise BadRequest for what the real API rejects; return the tool_use ids this turn offers."""
    if isinstance(content, str):
        if not content:
            raise BadRequest(f"messages.{i}: all messages must have non-empty content")
        return set()
    if not isinstance(content, list) or not content:
        raise BadRequest(f"messages.{i}: all messages must have non-empty content")
    allowed = {"user": {"text", "image", "tool_result"}, "assistant": {"text", "tool_use"}}[role]
    tool_uses: set[str] = set()
    seen_other = False
    for j, block in enumerate(content):
        kind = block.get("type")
        if kind not in allowed:
            raise BadRequest(f"messages.{i}.content.{j}.type: '{kind}' is not allowed in a {role} message")
        if kind == "text" and not block.get("text"):
            raise BadRequest(f"messages.{i}.content.{j}: text content blocks must be non-empty")
        if kind == "image":
            source = block.get("source") or {}
            if source.get("type") == "base64":
                if source.get("media_type") not in IMAGE_TYPES or not source.get("data"):
                    raise BadRequest(f"messages.{i}.content.{j}.source: invalid base64 image source")
            elif source.get("type") != "url" or not str(source.get("url", "")).startswith("http"):
                raise BadRequest(f"messages.{i}.content.{j}.source: invalid image source")
        if kind == "tool_use":
            if not isinstance(block.get("input"), dict) or not block.get("id") or not block.get("name"):
                raise BadRequest(f"messages.{i}.content.{j}: tool_use needs id, name and an object input")
            tool_uses.add(block["id"])
        if kind == "tool_result":
            if seen_other:
                raise BadRequest(f"messages.{i}: tool_result blocks must come first in the content")
            if block.get("tool_use_id") not in previous_tool_uses:
                raise BadRequest(f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                                 f"{block.get('tool_use_id')}. Each `tool_result` block must have a corresponding "
                                 "`tool_use` block in the previous message.")
        else:
            seen_other = True
    return tool_uses


def check_request(body: Any) -> None:
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    for field in body:
        if field not in FIELDS:
            raise BadRequest(f"{field}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str):
        raise BadRequest("model: Field required")
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        raise BadRequest("max_tokens: Field required")
    temperature = body.get("temperature")
    if temperature is not None and not 0 <= temperature <= 1:
        raise BadRequest("temperature: Input should be less than or equal to 1")
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise BadRequest("system: Input should be a valid string or list of text blocks")
    stops = body.get("stop_sequences")
    if stops is not None and not (isinstance(stops, list) and all(isinstance(s, str) for s in stops)):
        raise BadRequest("stop_sequences: Input should be a valid list of strings")
    for j, tool in enumerate(body.get("tools") or []):
        if not tool.get("name") or (tool.get("input_schema") or {}).get("type") != "object":
            raise BadRequest(f"tools.{j}: a tool needs a name and an object input_schema")
    choice = body.get("tool_choice")
    if choice is not None and choice.get("type") not in ("auto", "any", "tool", "none"):
        raise BadRequest("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: Field required")
    previous_tool_uses: set[str] = set()
    # "system" turns (text instructions between the turns) take no part in the alternation.
    for i, message in enumerate(messages):
        if message.get("role") == "system" and not text_of(message.get("content")):
            raise BadRequest(f"messages.{i}: a system message needs text content")
    turns = [m for m in messages if m.get("role") != "system"]
    for i, message in enumerate(turns):
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise BadRequest(f"messages.{i}.role: Input should be 'user', 'assistant' or 'system'")
        if i == 0 and role != "user":
            raise BadRequest('messages: first message must use the "user" role')
        if i > 0 and turns[i - 1].get("role") == role:
            raise BadRequest(f'messages: roles must alternate between "user" and "assistant", '
                             f'but found multiple "{role}" roles in a row')
        previous_tool_uses = _check_blocks(i, role, message.get("content"), previous_tool_uses)


def _cut_at_stop(text: str, stops: list[str]) -> tuple[str, str | None]:
    found = [(text.index(s), s) for s in stops if s and s in text]
    if not found:
        return text, None
    at, stop = min(found)
    return text[:at], stop


def plan_reply(body: dict[str, Any]) -> dict[str, Any]:
    """The fake model's answer: content blocks (text as word pieces), stop reason and token counts."""
    messages = body["messages"]
    system = body.get("system")
    prompt = [text_of(system)] if system else []
    for message in messages:
        for block in blocks_of(message["content"]):
            prompt.append(block.get("text") or text_of(block.get("content")) if block.get("type") != "image" else "")
    input_tokens = sum(count_tokens(p) for p in prompt if p) or 1
    final = [m for m in messages if m.get("role") != "system"][-1]
    last = blocks_of(final["content"])
    said = text_of(final["content"])
    results = [b for b in last if b.get("type") == "tool_result"]
    choice = (body.get("tool_choice") or {}).get("type")
    offered = [t["name"] for t in body.get("tools") or []] if choice != "none" else []
    plan: dict[str, Any] = {"id": MESSAGE_ID, "input_tokens": input_tokens, "stop_sequence": None}
    if results:
        text = f"Tool said: {text_of(results[-1].get('content'))}"
    elif "forbidden" in said:
        return {**plan, "blocks": [("text", words("I can't help with that."))], "stop_reason": "refusal",
                "output_tokens": 5}
    elif called := next((name for name in offered if f"call {name}" in said), None):
        tool_use = {"type": "tool_use", "id": TOOL_USE_ID, "name": called, "input": TOOL_INPUT}
        return {**plan, "blocks": [("text", words(f"Calling {called}.")), ("tool_use", tool_use)],
                "stop_reason": "tool_use", "output_tokens": 10}
    else:
        images = [b["source"] for b in last if b.get("type") == "image"]
        text = f"Echo: {said}" + "".join(
            f" [image: base64 {s['media_type']}]" if s["type"] == "base64" else f" [image: url {s['url']}]"
            for s in images)
    text, stop = _cut_at_stop(text, body.get("stop_sequences") or [])
    pieces = words(text)
    stop_reason = "stop_sequence" if stop else "end_turn"
    if len(pieces) > body["max_tokens"]:
        pieces, stop_reason, stop = pieces[: body["max_tokens"]], "max_tokens", None
    return {**plan, "blocks": [("text", pieces)], "stop_reason": stop_reason, "stop_sequence": stop,
            "output_tokens": len(pieces)}


def event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **data}) + b"\n\n"


def stream_events(plan: dict[str, Any], model: str) -> list[bytes]:
    usage = {"input_tokens": plan["input_tokens"], "cache_creation_input_tokens": 0,
             "cache_read_input_tokens": plan.get("cache_read", 0)}
    events = [event("message_start", {"message": {
        "id": plan["id"], "type": "message", "role": "assistant", "content": [], "model": model,
        "stop_reason": None, "stop_sequence": None, "usage": {**usage, "output_tokens": 1}}})]
    for index, (kind, value) in enumerate(plan["blocks"]):
        if kind == "text":
            events.append(event("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}}))
            if index == 0:
                events.append(b'event: ping\ndata: {"type": "ping"}\n\n')
            events += [event("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": piece}})
                       for piece in value]
        else:
            start = {**value, "input": {}}
            events.append(event("content_block_start", {"index": index, "content_block": start}))
            arguments = orjson.dumps(value["input"]).decode()
            pieces = [""] + [arguments[i:i + 6] for i in range(0, len(arguments), 6)]
            events += [event("content_block_delta", {"index": index, "delta": {
                "type": "input_json_delta", "partial_json": piece}}) for piece in pieces]
        events.append(event("content_block_stop", {"index": index}))
    events.append(event("message_delta", {
        "delta": {"stop_reason": plan["stop_reason"], "stop_sequence": plan["stop_sequence"]},
        "usage": {"output_tokens": plan["output_tokens"]}}))
    events.append(event("message_stop", {}))
    return events


def message_body(plan: dict[str, Any], model: str) -> dict[str, Any]:
    content = [{"type": "text", "text": "".join(value)} if kind == "text" else value for kind, value in plan["blocks"]]
    return {"id": plan["id"], "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": plan["stop_reason"], "stop_sequence": plan["stop_sequence"],
            "usage": {"input_tokens": plan["input_tokens"], "output_tokens": plan["output_tokens"],
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": plan.get("cache_read", 0)}}


class FakeAnthropic(FakeServer):
    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.stream_error_after: int | None = None
        self.cache_read_tokens = 0  # reported as read from the prompt cache (part of the input, not counted twice)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/messages", self.messages), web.post("/v1/messages/count_tokens", self.count_tokens),
                web.get("/v1/models", self.models)]

    def reset(self) -> None:
        super().reset()
        self.stream_error_after = None
        self.cache_read_tokens = 0

    def fail_next(self, status: int) -> None:
        """The next request gets Anthropic's error body for this status (429 with retry-after: 7)."""
        type_, message = ERRORS.get(status, ERRORS[500])
        headers = {"retry-after": "7"} if status == 429 else {}
        self.fail_next_raw(status, error_body(type_, message), "application/json", headers)

    def overload_stream_after(self, events: int) -> None:
        """Streams send this many events, then an `error` event (overloaded_error), then end."""
        self.stream_error_after = events

    def _refused(self, request: web.Request) -> web.Response | None:
        if request.headers.get("x-api-key") != self.api_key:
            return web.Response(status=401, body=error_body("authentication_error", "invalid x-api-key"),
                                content_type="application/json")
        version = request.headers.get("anthropic-version")
        if version not in API_VERSIONS:
            message = "anthropic-version: header is required" if not version else f"anthropic-version: invalid version {version}"
            return web.Response(status=400, body=error_body("invalid_request_error", message),
                                content_type="application/json")
        return None

    async def models(self, request: web.Request) -> web.Response:
        if refused := self._refused(request):
            return refused
        return self.json_response({"data": [{"type": "model", "id": m, "display_name": m,
                                             "created_at": "2025-05-14T00:00:00Z"} for m in MODELS],
                                   "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]})

    async def count_tokens(self, request: web.Request) -> web.Response:
        """The input tokens the fake model would count for this request (as plan_reply counts them)."""
        if refused := self._refused(request):
            return refused
        try:
            body = orjson.loads(await request.read())
            check_request({**body, "max_tokens": 1} if isinstance(body, dict) else body)
        except (orjson.JSONDecodeError, BadRequest) as exc:
            return web.Response(status=400, body=error_body("invalid_request_error", str(exc)),
                                content_type="application/json")
        return self.json_response({"input_tokens": plan_reply({**body, "max_tokens": 1})["input_tokens"]})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        if refused := self._refused(request):
            return refused
        try:
            body = orjson.loads(await request.read())
            check_request(body)
        except (orjson.JSONDecodeError, BadRequest) as exc:
            return web.Response(status=400, body=error_body("invalid_request_error", str(exc)),
                                content_type="application/json")
        plan = plan_reply(body)
        plan["cache_read"] = self.cache_read_tokens
        if not body.get("stream"):
            return self.json_response(message_body(plan, body["model"]), headers={"request-id": "req_fake0001"})
        events = stream_events(plan, body["model"])
        if self.stream_error_after is not None:
            overloaded = {"error": {"type": "overloaded_error", "message": "Overloaded"}}
            events = events[: self.stream_error_after] + [event("error", overloaded)]
        return await self.sse(request, events)
