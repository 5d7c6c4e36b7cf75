"""The Django/DRF side of the API: the model list and the health check (low volume, not hot)."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway import routing
from gateway.authentication import TokenInfo
from gateway.errors import model_not_found
from gateway.routing import Entry


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
