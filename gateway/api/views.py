"""The Django/DRF side of the API: the model list, token counting and the health check (low volume, not hot)."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_safe
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway.access.authentication import TokenInfo
from gateway.errors import invalid_request, model_not_found
from gateway.inference import validation
from gateway.routing import registry as routing
from gateway.routing.registry import Entry
from gateway.usage import tokenizer


def model_object(entry: Entry) -> dict[str, Any]:
    owner = entry.routes[0].account.kind if entry.routes else "gateway"
    return {"id": entry.name, "object": "model", "created": entry.created, "owned_by": owner}


class ModelList(APIView):
    """GET /v1/models: the exact model names this token may use, in OpenAI's list shape."""

    def get(self, request: Request) -> Response:
        token: TokenInfo = request.user
        entries = [e for e in routing.current_sync().listed() if e.routes and token.allows(e.name, e.name)]
        return Response({"object": "list", "data": [model_object(e) for e in entries]})


class ModelDetail(APIView):
    """GET /v1/models/{id}: one model (a name that a registry pattern serves is found too)."""

    def get(self, request: Request, model: str) -> Response:
        token: TokenInfo = request.user
        resolved = routing.current_sync().resolve(model)
        if resolved is None or not resolved[1] or not token.allows(model, resolved[0].name):
            raise model_not_found(model)
        entry = resolved[0]
        data = model_object(entry)
        data["id"] = model
        return Response(data)


def _tokenize_input(body: dict[str, Any]) -> str | list[str]:
    value = body["input"]
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise invalid_request("'input' must be a string or an array of strings.", "input", "invalid_type")
    if not value:
        raise invalid_request("'input' must contain at least one string.", "input", "empty_array")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise invalid_request(f"'input[{i}]' must be a string.", f"input[{i}]", "invalid_type")
    return value


class Tokenize(APIView):
    """POST /v1/tokenize: the tokens of ``input`` (a string or strings) or of chat ``messages``.

    Exact for OpenAI models (their own tiktoken encoding), otherwise a marked estimate; with the
    model's context window and what remains of it.
    """

    def post(self, request: Request) -> Response:
        token: TokenInfo = request.user
        body = validation.json_object(request.data)
        model, entry, routes = routing.choose(routing.current_sync(), validation.optional_string(body, "model"),
                                              None, token)
        if not routes:  # as /v1/models/{id}: a model nothing serves does not exist for the client
            raise model_not_found(model)
        has_input, has_messages = body.get("input") is not None, body.get("messages") is not None
        if has_input == has_messages:
            raise invalid_request(
                "Provide exactly one of 'input' (a string or an array of strings) or 'messages'.", "input",
                "invalid_value" if has_input else "missing_required_parameter",
            )
        # An alias counts with the tokenizer of the upstream model it is served by.
        names = [model, *(route.model_for(model) for route in routes)]
        counted_as = next((name for name in names if tokenizer.encoding_for(name)), model)
        data: dict[str, Any] = {"object": "tokenize", "model": model}
        if has_input:
            texts = _tokenize_input(body)
            count = tokenizer.count_text(counted_as, texts)
            data["tokens"] = count.tokens
            if isinstance(texts, list):
                data["counts"] = list(count.counts)
        else:
            tools = body.get("tools")
            if tools is not None and not isinstance(tools, list):
                raise invalid_request("'tools' must be an array of tool objects.", "tools", "invalid_type")
            count = tokenizer.count_messages(counted_as, validation.chat_messages(body), tools)
            data["tokens"] = count.tokens
        window = entry.context_window
        data.update({
            "exact": count.exact, "estimated": count.estimated, "method": count.method,
            "context_window": window, "remaining": window - count.tokens if window else None,
        })
        return Response(data)


def provider_status() -> list[dict[str, Any]]:
    from gateway.models import ProviderAccount

    return [
        {
            "name": p.name,
            "kind": p.kind,
            "active": p.active,
            "configured": p.is_configured,
            "last_success_at": p.last_success_at.isoformat() if p.last_success_at else None,
            "last_error_at": p.last_error_at.isoformat() if p.last_error_at else None,
            "last_error": p.last_error or None,
        }
        for p in ProviderAccount.objects.order_by("name")
    ]


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False


@require_safe
async def health(request: HttpRequest) -> JsonResponse:
    """GET /health: the gateway is up; the database answers; each provider account's state."""
    database_ok = await sync_to_async(_database_ok)()
    providers = await sync_to_async(provider_status)() if database_ok else []
    body = {
        "status": "ok" if database_ok else "degraded",
        "time": timezone.now().isoformat(),
        "database": "ok" if database_ok else "unavailable",
        "providers": providers,
    }
    return JsonResponse(body, status=200 if database_ok else 503)
