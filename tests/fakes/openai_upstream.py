"""A fake OpenAI upstream speaking the real wire format: JSON, SSE with the usage chunk, tool calls, errors.

Behaviour, so tests can predict answers:
- the reply is "Echo: <last user text>"; after a `tool` message it is "Tool said: <its content>";
- "call <name>" in the last user message, with a tool of that name offered, returns a tool call;
- `max_tokens` / `max_completion_tokens` cut the reply at that many words (finish_reason "length");
- tokens are whitespace-separated words.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.server import FakeServer, count_tokens, words

TOOL_ARGUMENTS = '{"location": "Paris"}'
MODELS = ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]


def text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def plan_reply(body: dict[str, Any]) -> dict[str, Any]:
    """What the fake model answers: content pieces or a tool call, finish reason and usage."""
    messages = body["messages"]
    prompt_tokens = sum(count_tokens(text_of(m.get("content"))) for m in messages)
    # The last turn that is not an instruction (a system message may follow the user's turn).
    last = next((m for m in reversed(messages) if m.get("role") not in ("system", "developer")), messages[-1])
    offered = {t["function"]["name"] for t in body.get("tools") or [] if t.get("type") == "function"}
    said = text_of(last.get("content"))
    if last.get("role") == "tool":
        text = f"Tool said: {said}"
    else:
        for name in offered:
            if f"call {name}" in said:
                return {"tool_call": {"id": "call_fake_0001", "type": "function",
                                      "function": {"name": name, "arguments": TOOL_ARGUMENTS}},
                        "finish_reason": "tool_calls", "prompt_tokens": prompt_tokens, "completion_tokens": 8}
        text = f"Echo: {said}"
    pieces = words(text)
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    finish = "stop"
    if limit and len(pieces) > limit:
        pieces, finish = pieces[:limit], "length"
    return {"pieces": pieces, "finish_reason": finish, "prompt_tokens": prompt_tokens,
            "completion_tokens": len(pieces)}


def usage(plan: dict[str, Any]) -> dict[str, Any]:
    return {"prompt_tokens": plan["prompt_tokens"], "completion_tokens": plan["completion_tokens"],
            "total_tokens": plan["prompt_tokens"] + plan["completion_tokens"],
            "prompt_tokens_details": {"cached_tokens": plan.get("cached_tokens", 0), "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


ERRORS = {
    400: ("Invalid value for 'temperature'.", "invalid_request_error", "invalid_value", "temperature"),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key", None),
    403: ("You are not allowed to use this model.", "invalid_request_error", None, None),
    404: ("The model does not exist.", "invalid_request_error", "model_not_found", "model"),
    429: ("Rate limit reached for requests.", "requests", "rate_limit_exceeded", None),
    500: ("The server had an error while processing your request.", "server_error", None, None),
    503: ("The engine is currently overloaded.", "server_error", None, None),
}


def fake_vector(text: str, dimensions: int = 8) -> list[float]:
    """A deterministic unit-free vector for a text: what the fakes return as its embedding."""
    digest = hashlib.sha256(text.encode()).digest()
    return [round((b - 128) / 128, 6) for b in digest[:dimensions]]


class FakeOpenAI(FakeServer):
    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/chat/completions", self.chat), web.get("/v1/models", self.models),
                web.post("/v1/completions", self.completions), web.post("/v1/embeddings", self.embeddings),
                web.post("/v1/responses", self.responses)]

    without_usage = False  # like some OpenAI-compatible servers: no usage, whatever is asked
    cached_tokens = 0  # prompt tokens a chat answer reports as read from the prompt cache (at most all)

    def reset(self) -> None:
        super().reset()
        self.without_usage = False
        self.cached_tokens = 0

    def fail_next(self, status: int) -> None:
        """The next request gets OpenAI's error body for this status (429 with retry-after: 1)."""
        message, type_, code, param = ERRORS.get(status, ERRORS[500])
        headers = {"retry-after": "1"} if status == 429 else {}
        self.fail_next_raw(status, error_body(message, type_, code, param), "application/json", headers)

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        given = request.headers.get("Authorization", "")
        if given == f"Bearer {self.api_key}":
            return None
        shown = given.removeprefix("Bearer ")
        message = f"Incorrect API key provided: {shown[:8]}{'*' * 10}{shown[-4:]}. You can find your API key at https://platform.openai.com/account/api-keys."
        return web.Response(status=401, body=error_body(message, "invalid_request_error", "invalid_api_key"),
                            content_type="application/json")

    async def models(self, request: web.Request) -> web.Response:
        if denied := self._unauthorized(request):
            return denied
        return self.json_response({"object": "list", "data": [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "openai"} for m in MODELS]})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        if denied := self._unauthorized(request):
            return denied
        body = orjson.loads(await request.read())
        plan = plan_reply(body)
        plan["cached_tokens"] = min(self.cached_tokens, plan["prompt_tokens"])
        base = {"id": "chatcmpl-fake0001", "created": int(time.time()), "model": body["model"],
                "system_fingerprint": "fp_fake"}
        if body.get("stream"):
            shown = {**body, "stream_options": None} if self.without_usage else body
            return await self.sse(request, list(self._chunks(base, plan, shown)))
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        if "tool_call" in plan:
            message["tool_calls"] = [plan["tool_call"]]
        else:
            message["content"] = "".join(plan["pieces"])
        answer = {**base, "object": "chat.completion", "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": plan["finish_reason"]}],
            "usage": usage(plan), "service_tier": "default"}
        if self.without_usage:
            del answer["usage"]
        return self.json_response(answer)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        if denied := self._unauthorized(request):
            return denied
        body = orjson.loads(await request.read())
        prompt = body["prompt"] if isinstance(body["prompt"], str) else body["prompt"][0]
        plan = plan_reply({"messages": [{"role": "user", "content": prompt}], "max_tokens": body.get("max_tokens")})
        base = {"id": "cmpl-fake0001", "created": int(time.time()), "model": body["model"], "system_fingerprint": "fp_fake"}
        text = "".join(plan["pieces"])
        if not body.get("stream"):
            return self.json_response({**base, "object": "text_completion", "choices": [
                {"text": (prompt if body.get("echo") else "") + text, "index": 0, "logprobs": None,
                 "finish_reason": plan["finish_reason"]}], "usage": usage(plan)})
        events = [b"data: " + orjson.dumps({**base, "object": "text_completion", "choices": [
            {"text": piece, "index": 0, "logprobs": None, "finish_reason": None}]}) + b"\n\n" for piece in plan["pieces"]]
        events.append(b"data: " + orjson.dumps({**base, "object": "text_completion", "choices": [
            {"text": "", "index": 0, "logprobs": None, "finish_reason": plan["finish_reason"]}]}) + b"\n\n")
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(b"data: " + orjson.dumps({**base, "object": "text_completion", "choices": [],
                                                    "usage": usage(plan)}) + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        return await self.sse(request, events)


    async def embeddings(self, request: web.Request) -> web.Response:
        if denied := self._unauthorized(request):
            return denied
        body = orjson.loads(await request.read())
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = []
        for i, text in enumerate(inputs):
            vector = fake_vector(str(text), body.get("dimensions") or 8)
            encoded: Any = vector
            if body.get("encoding_format") == "base64":
                encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        tokens = sum(count_tokens(str(t)) for t in inputs)
        return self.json_response({"object": "list", "model": body["model"], "data": data,
                                   "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def responses(self, request: web.Request) -> web.StreamResponse:
        """The Responses API: the same fake model, answered as a response object or its stream events."""
        if denied := self._unauthorized(request):
            return denied
        body = orjson.loads(await request.read())
        plan = plan_reply({"messages": responses_messages(body), "max_tokens": body.get("max_output_tokens"),
                           "tools": [{"type": "function", "function": {"name": t["name"]}}
                                     for t in body.get("tools") or [] if t.get("type") == "function"]})
        plan["cached_tokens"] = min(self.cached_tokens, plan["prompt_tokens"])
        response = {"id": f"resp_fake{len(self.requests):04d}", "object": "response", "created_at": int(time.time()),
                    "status": "in_progress", "completed_at": None, "error": None, "incomplete_details": None,
                    "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
                    "model": body["model"], "output": [], "parallel_tool_calls": True, "previous_response_id": None,
                    "reasoning": {"effort": None, "summary": None}, "store": body.get("store", True),
                    "temperature": body.get("temperature", 1.0), "text": {"format": {"type": "text"}},
                    "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
                    "top_p": body.get("top_p", 1.0), "truncation": "disabled",
                    "metadata": body.get("metadata") or {}}
        if "tool_call" in plan:
            call = plan["tool_call"]
            item = {"id": "fc_fake0001", "type": "function_call", "status": "completed", "call_id": call["id"],
                    "name": call["function"]["name"], "arguments": call["function"]["arguments"]}
        else:
            item = {"id": "msg_fake0001", "type": "message", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": "".join(plan["pieces"]), "annotations": [],
                                 "logprobs": []}]}
        final = {**response, "status": "completed", "completed_at": int(time.time()), "output": [item], "usage": {
            "input_tokens": plan["prompt_tokens"],
            "input_tokens_details": {"cached_tokens": plan["cached_tokens"], "cache_write_tokens": 0},
            "output_tokens": plan["completion_tokens"], "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": plan["prompt_tokens"] + plan["completion_tokens"]}}
        if plan["finish_reason"] == "length":
            final.update(status="incomplete", completed_at=None, incomplete_details={"reason": "max_output_tokens"})
        if not body.get("stream"):
            return self.json_response(final)
        return await self.sse(request, list(responses_events(response, final, item, plan)))

    @staticmethod
    def _chunks(base: dict[str, Any], plan: dict[str, Any], body: dict[str, Any]):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        extra = {"usage": None} if include_usage else {}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            payload = {**base, "object": "chat.completion.chunk", "service_tier": "default",
                       "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
            return b"data: " + orjson.dumps(payload) + b"\n\n"

        if "tool_call" in plan:
            call = plan["tool_call"]
            yield chunk({"role": "assistant", "content": None, "tool_calls": [
                {"index": 0, "id": call["id"], "type": "function",
                 "function": {"name": call["function"]["name"], "arguments": ""}}], "refusal": None})
            arguments = call["function"]["arguments"]
            for start in range(0, len(arguments), 6):
                yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[start:start + 6]}}]})
        else:
            yield chunk({"role": "assistant", "content": "", "refusal": None})
            for piece in plan["pieces"]:
                yield chunk({"content": piece})
        yield chunk({}, plan["finish_reason"])
        if include_usage:
            yield b"data: " + orjson.dumps({**base, "object": "chat.completion.chunk", "service_tier": "default",
                                            "choices": [], "usage": usage(plan)}) + b"\n\n"
        yield b"data: [DONE]\n\n"


def responses_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The fake's reading of a Responses ``input``: chat-like messages (a function_call_output is a tool message)."""
    given = body.get("input")
    items = [{"role": "user", "content": given}] if isinstance(given, str) else given or []
    out: list[dict[str, Any]] = []
    for item in items:
        if item.get("type") == "function_call_output":
            out.append({"role": "tool", "content": item.get("output")})
        elif item.get("type", "message") == "message":
            out.append({"role": item.get("role"), "content": text_of(item.get("content"))})
    return out


def responses_events(response: dict[str, Any], final: dict[str, Any], item: dict[str, Any], plan: dict[str, Any]):
    sequence = iter(range(10_000))

    def event(kind: str, **fields: Any) -> bytes:
        return (f"event: {kind}\n".encode() + b"data: "
                + orjson.dumps({"type": kind, "sequence_number": next(sequence), **fields}) + b"\n\n")

    yield event("response.created", response=response)
    yield event("response.in_progress", response=response)
    opened = {**item, "status": "in_progress"}
    if item["type"] == "message":
        opened["content"] = []
        yield event("response.output_item.added", output_index=0, item=opened)
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        yield event("response.content_part.added", item_id=item["id"], output_index=0, content_index=0, part=part)
        for piece in plan["pieces"]:
            yield event("response.output_text.delta", item_id=item["id"], output_index=0, content_index=0,
                        delta=piece, logprobs=[])
        text = item["content"][0]["text"]
        yield event("response.output_text.done", item_id=item["id"], output_index=0, content_index=0, text=text,
                    logprobs=[])
        yield event("response.content_part.done", item_id=item["id"], output_index=0, content_index=0,
                    part=item["content"][0])
    else:
        opened["arguments"] = ""
        yield event("response.output_item.added", output_index=0, item=opened)
        yield event("response.function_call_arguments.delta", item_id=item["id"], output_index=0,
                    delta=item["arguments"])
        yield event("response.function_call_arguments.done", item_id=item["id"], output_index=0,
                    name=item["name"], arguments=item["arguments"])
    yield event("response.output_item.done", output_index=0, item=item)
    yield event("response.incomplete" if final["status"] == "incomplete" else "response.completed", response=final)
