"""Chat completion answers as Responses API objects: the ``response`` object, its output items, its usage."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from providers.base import Usage, count
from providers.responses.request import NAMESPACE_SEPARATOR, new_id

# chat finish_reason -> the reason a response is incomplete
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def skeleton(request: Mapping[str, Any], context: Mapping[str, Any], model: str, status: str = "in_progress",
             ) -> dict[str, Any]:
    """The response object for a request, before any output: the request's settings echoed."""
    text = request.get("text") if isinstance(request.get("text"), dict) else {}
    response = {
        "id": context["id"], "object": "response", "created_at": context["created_at"], "status": status,
        "completed_at": None, "error": None, "incomplete_details": None,
        "instructions": request.get("instructions") if isinstance(request.get("instructions"), str) else None,
        "max_output_tokens": request.get("max_output_tokens"), "model": model, "output": [],
        "parallel_tool_calls": request.get("parallel_tool_calls") is not False,
        "previous_response_id": request.get("previous_response_id"),
        "reasoning": request.get("reasoning") if isinstance(request.get("reasoning"), dict) else None,
        "store": request.get("store") is not False,
        "temperature": request.get("temperature") if request.get("temperature") is not None else 1.0,
        "text": {"format": {"type": "text"}, **text},
        "tool_choice": request.get("tool_choice") if request.get("tool_choice") is not None else "auto",
        "tools": request.get("tools") if isinstance(request.get("tools"), list) else [],
        "top_p": request.get("top_p") if request.get("top_p") is not None else 1.0,
        "truncation": request.get("truncation") if request.get("truncation") in ("auto", "disabled") else "disabled",
        "metadata": request.get("metadata") if isinstance(request.get("metadata"), dict) else {},
    }
    if isinstance(request.get("user"), str):
        response["user"] = request["user"]
    return response


def response_usage(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {"input_tokens": usage.prompt_tokens,
            "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
            "output_tokens": usage.completion_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens}


def finish(response: dict[str, Any], finish_reason: Any, usage: Usage | None) -> dict[str, Any]:
    """The response once the answer is complete: its status, why it is incomplete, its usage."""
    reason = INCOMPLETE.get(str(finish_reason))
    response["status"] = "incomplete" if reason else "completed"
    response["incomplete_details"] = {"reason": reason} if reason else None
    response["completed_at"] = int(time.time()) if not reason else None
    if usage is not None:  # (the schema has no null usage: unknown usage is left out)
        response["usage"] = response_usage(usage)
    return response


def message_item(item_id: str, text: str, refusal: str = "", status: str = "completed") -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if text or not refusal:
        content.append(output_text(text))
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    return {"id": item_id, "type": "message", "role": "assistant", "status": status, "content": content}


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def call_item(call_id: str, flat_name: str, arguments: str, names: Mapping[str, Any],
              status: str = "completed", item_id: str | None = None) -> dict[str, Any]:
    """A ``function_call`` item (its namespace split off again), or a ``custom_tool_call`` for a custom tool."""
    namespace, name, kind = names.get(flat_name) or ["", flat_name, "function"]
    if kind == "custom":
        try:
            data = orjson.loads(arguments or "{}")
            given = data.get("input") if isinstance(data, dict) else None
        except orjson.JSONDecodeError:
            given = None
        item = {"id": item_id or new_id("ctc"), "type": "custom_tool_call", "status": status, "call_id": call_id,
                "name": name, "input": given if isinstance(given, str) else arguments}
    else:
        item = {"id": item_id or new_id("fc"), "type": "function_call", "status": status, "call_id": call_id,
                "name": name, "arguments": arguments}
    if namespace:
        item["namespace"] = namespace
    return item


def flat_name(item: Mapping[str, Any]) -> str:
    namespace = item.get("namespace")
    return f"{namespace}{NAMESPACE_SEPARATOR}{item['name']}" if namespace else str(item.get("name"))


def from_chat(chat: bytes, usage: Usage | None, request: Mapping[str, Any], context: Mapping[str, Any],
              model: str) -> bytes:
    """A ``chat.completion`` body (in OpenAI's shape) as a ``response`` object."""
    data = orjson.loads(chat)
    choice = (data.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    names = context.get("names") or {}
    response = skeleton(request, context, model)
    content, refusal = message.get("content"), message.get("refusal")
    if content or refusal or not message.get("tool_calls"):
        response["output"].append(message_item(new_id("msg"), content or "", refusal or ""))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        response["output"].append(call_item(str(call.get("id") or new_id("call")), str(function.get("name") or ""),
                                            str(function.get("arguments") or ""), names))
    return orjson.dumps(finish(response, choice.get("finish_reason"), usage))


def usage_of(response: Mapping[str, Any]) -> Usage | None:
    """The usage of a Responses ``response`` object (as OpenAI reports it), in the gateway's terms."""
    data = response.get("usage")
    if not isinstance(data, dict):
        return None
    prompt, completion = count(data.get("input_tokens")), count(data.get("output_tokens"))
    details = data.get("input_tokens_details")
    cached = count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    return Usage(prompt, completion, count(data.get("total_tokens")) or prompt + completion, cached)
