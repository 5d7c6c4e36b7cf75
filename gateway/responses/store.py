"""Reading and writing stored responses (``gateway.models.StoredResponse``) for one token.

The write happens before the client sees the end of its answer (the whole body, or the stream's
``response.completed`` event): a client that has its answer can continue from it at once, on any
worker. It is one small INSERT, off the event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.db import DatabaseError, IntegrityError, close_old_connections, connection
from django.utils import timezone

from gateway.access.authentication import TokenInfo
from gateway.conf import gateway_settings
from gateway.errors import GatewayError
from gateway.models import StoredResponse
from gateway.responses.items import for_upstream, stored
from gateway.usage.call import Call
from providers.responses.request import input_items

logger = logging.getLogger(__name__)

# How many earlier items a conversation may carry into one request (each turn adds its input and output).
MAX_CONTEXT_ITEMS = 10_000


def not_found(response_id: str, param: str | None = None) -> GatewayError:
    what = "Previous response" if param else "Response"
    return GatewayError(400 if param else 404, f"{what} with id '{response_id[:100]}' not found.",
                        "invalid_request_error", "previous_response_not_found" if param else "not_found", param)


_checked = threading.local()


def _fresh_connection() -> None:
    """The hot path has no request_started signal: drop this thread's connection if it broke or is too
    old, at most once a second (each check is a round trip to the database)."""
    now = time.monotonic()
    if connection.in_atomic_block or now - getattr(_checked, "at", 0.0) < 1.0:
        return  # (tests run inside a transaction)
    _checked.at = now
    close_old_connections()


def find(token_id: int, response_id: str) -> StoredResponse | None:
    _fresh_connection()
    return StoredResponse.objects.filter(pk=response_id, token_id=token_id).first()


def context_of(row: StoredResponse) -> list[dict[str, Any]]:
    """What a continuation of ``row`` starts from: everything its model read, then what it answered."""
    response = orjson.loads(row.response)
    return orjson.loads(row.input_items) + [item for item in response.get("output") or [] if isinstance(item, dict)]


async def expand(body: dict[str, Any], token: TokenInfo) -> list[dict[str, Any]]:
    """Put the conversation of ``previous_response_id`` (the token's own) before the body's input;
    returns every item the model is to read, as they are stored."""
    previous = body.get("previous_response_id")
    given = input_items(body)
    own = stored(given)
    if previous is None:
        return own
    if not isinstance(previous, str) or not previous or len(previous) > 100:
        raise not_found(str(previous), "previous_response_id")
    row = await sync_to_async(find)(token.id, previous)
    if row is None:
        raise not_found(previous, "previous_response_id")
    if len(row.input_items) + len(row.response) > gateway_settings.MAX_BODY_BYTES:
        raise GatewayError(400, f"The conversation of '{previous}' is larger than the gateway accepts in one request "
                           "(GATEWAY_MAX_BODY_BYTES): start a new one.", "invalid_request_error", "context_too_long",
                           "previous_response_id")
    history = context_of(row)
    if len(history) > MAX_CONTEXT_ITEMS:
        raise GatewayError(400, f"The conversation of '{previous}' has more than {MAX_CONTEXT_ITEMS} items.",
                           "invalid_request_error", "context_too_long", "previous_response_id")
    body["input"] = for_upstream(history) + given
    return history + own


def _save(row: StoredResponse) -> None:
    _fresh_connection()
    try:
        row.save(force_insert=True)
    except IntegrityError:  # the same id again (an upstream's own ids): the first one stays
        logger.warning("a stored response with the id %s exists already", row.pk)


async def save(call: Call, request: dict[str, Any], context: list[dict[str, Any]], answer: bytes | None) -> None:
    """Keep the answer (a response object, JSON) and the items it read, unless the request said ``store: false``."""
    if answer is None or request.get("store") is False or call.token is None:
        return
    try:
        response = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return
    if not isinstance(response, dict) or not isinstance(response.get("id"), str) or response.get("status") == "failed":
        return
    previous = request.get("previous_response_id")
    row = StoredResponse(id=response["id"][:100], token_id=call.token.id, created_at=timezone.now(),
                         model=str(response.get("model") or "")[:200],
                         previous_response_id=previous if isinstance(previous, str) else "",
                         response=answer.decode(), input_items=orjson.dumps(context).decode())
    try:
        await sync_to_async(_save)(row)
    except DatabaseError:  # the client still gets its answer; only continuing from it will fail
        logger.exception("could not store response %s", row.pk)


def prune(days: int, batch_size: int = 1000) -> int:
    """Delete stored responses older than ``days`` days, a batch at a time (short transactions, so the
    hot path's writes never wait long); how many were deleted."""
    cutoff = timezone.now() - timedelta(days=days)
    total = 0
    while True:
        ids = list(StoredResponse.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:batch_size])
        if not ids:
            return total
        deleted, _ = StoredResponse.objects.filter(pk__in=ids).delete()
        total += deleted
