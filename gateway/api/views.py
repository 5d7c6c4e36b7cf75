"""The Django/DRF side of the API: the model list, token counting and the health check (low volume, not hot)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.csrf import csrf_exempt
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway.access.authentication import TokenInfo, is_ops_token
from gateway.conf import gateway_settings
from gateway.db import borrowed_connection
from gateway.errors import invalid_request, method_not_allowed, model_not_found, render
from gateway.inference import validation
from gateway.routing import registry as routing
from gateway.routing.cooldowns import cooldowns
from gateway.routing.registry import Entry
from gateway.usage import tokenizer
from gateway.usage.log_writer import writer
from providers.registry import kind_choices

logger = logging.getLogger(__name__)


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


def _worked_since_it_failed(account: Any) -> bool:
    failed, worked = account.last_error_at, account.last_success_at
    return failed is None or (worked is not None and worked >= failed)


def provider_kinds(accounts: list[Any]) -> dict[str, dict[str, bool]]:
    """Every provider kind: ``configured`` (some active account of it has what it needs, e.g. its key)
    and ``available`` (one of those has not failed since it last worked). Nothing about the accounts."""
    kinds = {kind: {"configured": False, "available": False} for kind, _ in kind_choices()}
    for account in accounts:
        state = kinds.setdefault(account.kind, {"configured": False, "available": False})
        if account.active and account.is_configured:
            state["configured"] = True
            state["available"] = state["available"] or _worked_since_it_failed(account)
    return dict(sorted(kinds.items()))


def account_states(accounts: list[Any]) -> list[dict[str, Any]]:
    """Each provider account's name and state, its last upstream error included: for operators only."""
    return [
        {
            "name": p.name,
            "kind": p.kind,
            "active": p.active,
            "configured": p.is_configured,
            "key_status": p.key_status,  # ok | missing | undecryptable (GATEWAY_ENCRYPTION_KEYS changed)
            "last_success_at": p.last_success_at.isoformat() if p.last_success_at else None,
            "last_error_at": p.last_error_at.isoformat() if p.last_error_at else None,
            "last_error": p.last_error or None,
        }
        for p in accounts
    ]


def log_writer_state() -> dict[str, Any]:
    """This worker process's request-log queue (each worker has its own writer)."""
    pending = getattr(writer, "pending", None)
    return {
        "queued": pending() if callable(pending) else 0,
        "dropped": getattr(writer, "dropped", 0),
        "max_queued": gateway_settings.LOG_MAX_QUEUED_ROWS,
    }


async def cooldown_list() -> list[dict[str, Any]] | None:
    """The deployments in cooldown now (provider account, upstream model, until, reason); None when
    their store (Redis) cannot be read."""
    try:
        return await cooldowns.listing()
    except Exception:
        logger.warning("could not read the cooldowns for /health", exc_info=True)
        return None


def _accounts() -> list[Any]:
    from gateway.models import ProviderAccount

    return list(ProviderAccount.objects.order_by("name"))


async def _bounded(function: Any, failed: Any) -> Any:
    """``function()`` in a thread of its own, ``failed`` if it takes longer than a pooled connection's
    wait (GATEWAY_DB_POOL_TIMEOUT: a busy pool is not an outage) plus GATEWAY_DB_TIMEOUT_SECONDS: a
    database that hangs must not hang the health check."""
    def borrowing() -> Any:
        with borrowed_connection():  # (a thread no request ends: its connection goes back to the pool here)
            return function()

    try:
        return await asyncio.wait_for(sync_to_async(borrowing, thread_sensitive=False)(),
                                      gateway_settings.DB_POOL_TIMEOUT + gateway_settings.DB_TIMEOUT_SECONDS)
    except TimeoutError:
        return failed


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False


async def _is_operator(request: HttpRequest, database_ok: bool) -> bool:
    """The ops token (``Authorization: Bearer <GATEWAY_OPS_TOKEN>``), or a logged-in staff user's session."""
    if is_ops_token(request.headers.get("Authorization")):
        return True
    if not database_ok:  # (sessions and users are in the database)
        return False
    try:
        user = await request.auser()
    except Exception:
        return False
    return bool(user.is_active and user.is_staff)


@csrf_exempt  # (no state is changed: every other method gets the API's own 405, not Django's CSRF page)
async def health(request: HttpRequest) -> JsonResponse:
    """GET /health: liveness, the database, and each provider kind's availability — to anyone.

    Each account's name, state and last upstream error (which can name upstream hosts, accounts or
    quotas), and the log writer's counters, only to operators: see ``_is_operator``.
    """
    if request.method not in ("GET", "HEAD"):
        status, headers, payload = render(method_not_allowed(str(request.method), "GET, HEAD"))
        return JsonResponse(payload, status=status, headers=headers)
    database_ok = await _bounded(_database_ok, False)
    accounts = await _bounded(_accounts, None) if database_ok else []
    database_ok = database_ok and accounts is not None
    accounts = accounts or []
    body: dict[str, Any] = {
        "status": "ok" if database_ok else "degraded",
        "time": timezone.now().isoformat(),
        "database": "ok" if database_ok else "unavailable",
        "providers": provider_kinds(accounts) if database_ok else {},
    }
    if await _is_operator(request, database_ok):
        body["accounts"] = account_states(accounts)
        body["log_writer"] = log_writer_state()
        body["cooldowns"] = await cooldown_list()
    response = JsonResponse(body, status=200 if database_ok else 503)
    response["Cache-Control"] = "no-store"  # the detail must not be kept by a cache and served to others
    patch_vary_headers(response, ("Authorization", "Cookie"))
    return response
