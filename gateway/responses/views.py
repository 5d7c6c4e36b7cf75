"""GET and DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items: a token's stored responses.

A token sees only the responses it created: another token's id is a 404, as an unknown id is.
"""

from __future__ import annotations

from typing import Any

import orjson
from django.http import HttpResponse
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway.access.authentication import TokenInfo
from gateway.errors import invalid_request
from gateway.models import StoredResponse
from gateway.responses.store import find, not_found

MAX_PAGE = 100


def _owned(request: Request, response_id: str) -> StoredResponse:
    token: TokenInfo = request.user
    row = find(token.id, response_id) if len(response_id) <= 100 else None
    if row is None:
        raise not_found(response_id)
    return row


class ResponseDetail(APIView):
    """A stored response as it was answered; DELETE removes it (and its input items)."""

    def get(self, request: Request, response_id: str) -> HttpResponse:
        row = _owned(request, response_id)
        return HttpResponse(row.response.encode(), content_type="application/json")

    def delete(self, request: Request, response_id: str) -> Response:
        row = _owned(request, response_id)
        row.delete()
        return Response({"id": response_id, "object": "response", "deleted": True})


def _page(items: list[dict[str, Any]], query: Any) -> dict[str, Any]:
    limit = query.get("limit", "20")
    if not (str(limit).isdigit() and len(str(limit)) <= 3) or not 1 <= int(limit) <= MAX_PAGE:
        raise invalid_request(f"'limit' must be an integer from 1 to {MAX_PAGE}.", "limit", "invalid_value")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid_request("'order' must be 'asc' or 'desc'.", "order", "invalid_value")
    ordered = items if order == "asc" else items[::-1]
    after = query.get("after")
    if after:
        ids = [item.get("id") for item in ordered]
        if after not in ids:
            raise invalid_request(f"No input item with id '{after[:100]}'.", "after", "invalid_value")
        ordered = ordered[ids.index(after) + 1:]
    page = ordered[: int(limit)]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else "",
            "last_id": page[-1]["id"] if page else "", "has_more": len(ordered) > len(page)}


class ResponseInputItems(APIView):
    """The items a stored response's model read (its conversation's earlier turns, then its input), paginated."""

    def get(self, request: Request, response_id: str) -> Response:
        row = _owned(request, response_id)
        return Response(_page(orjson.loads(row.input_items), request.query_params))
