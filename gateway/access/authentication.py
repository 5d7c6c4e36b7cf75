"""Client authentication by API token.

A token arrives as ``Authorization: Bearer <token>``, ``X-AUTH-TOKEN: <token>``, ``X-API-Key: <token>``
(Anthropic's SDKs) or (unless
switched off) ``?auth_token=<token>``. It is looked up by its SHA-256 digest; the answer is
kept in-process for ``GATEWAY_CACHE_SECONDS`` so the hot path makes no query per request. While
the database is unavailable, a token read from it within ``GATEWAY_STALE_CACHE_SECONDS`` is still
served as it was then; any other token gets a 503 (``database_unavailable``).
``GatewayTokenAuthentication`` is the DRF face of the same lookup.

With ``GATEWAY_ANONYMOUS`` on, a request that carries no token at all is the anonymous identity:
the ApiToken row whose digest is ``ANONYMOUS_DIGEST`` (which no presented token can match), looked
up, cached and invalidated exactly as a token is, so its allow-list, limits and log rows are a
token's. A request with a wrong token is still refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

if TYPE_CHECKING:
    from gateway.edge.http import Request as HotRequest

from gateway import crypto, db, invalidation
from gateway.access.limits import Limits
from gateway.conf import gateway_settings
from gateway.db import borrowed_connection
from gateway.errors import authentication_failed, database_unavailable, not_authenticated
from gateway.routing import patterns

MAX_CACHED_TOKENS = 10_000


@dataclass(frozen=True)
class TokenInfo:
    """What the gateway needs to know about an authenticated token; also DRF's ``request.user``."""

    id: int
    name: str
    prefix: str
    team_id: int | None
    active: bool
    expires_at: float | None  # unix time
    allowed_models: tuple[str, ...]
    limits: tuple[Limits, ...] = ()  # the token's, then its team's; empty: no limits at all
    anonymous: bool = False  # the anonymous identity: a request without a token (GATEWAY_ANONYMOUS)
    per_address: Limits | None = None  # limits per client address (gateway/access/addresses.py), if any

    is_authenticated = True

    def allows(self, requested: str, entry_name: str | None = None) -> bool:
        if not self.allowed_models:
            return True
        return any(
            patterns.matches(allowed, requested) or allowed == entry_name for allowed in self.allowed_models
        )


def raw_token_from(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The raw token from the request, or None. Header names are lower-case."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    # X-AUTH-TOKEN, then X-API-Key: what Anthropic's SDKs and Claude Code send with an API key.
    token = headers.get("x-auth-token") or headers.get("x-api-key")
    if token:
        return token.strip()
    if gateway_settings.ALLOW_QUERY_TOKEN:
        token = query.get("auth_token")
        if token:
            return token.strip()
    return None


def is_ops_token(authorization: str | None) -> bool:
    """Whether an ``Authorization`` header is ``Bearer <OPS_TOKEN>`` (never while that setting is empty).

    Compared as SHA-256 digests in constant time, so neither the value nor its length shows in the
    time taken. Only the header form: an operator's secret never travels in a URL.
    """
    expected = gateway_settings.OPS_TOKEN
    if not expected or not authorization:
        return False
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return False
    presented = value.strip().encode("latin-1", "replace")  # (the header's bytes as they were sent)
    return hmac.compare_digest(hashlib.sha256(presented).digest(), hashlib.sha256(expected.encode()).digest())


# Known tokens and unknown digests are kept apart: a flood of random tokens fills (and, when full,
# empties) only the second, so the real tokens' entries stay and their requests make no query.
_cache: dict[str, tuple[TokenInfo | None, float]] = {}
_unknown: dict[str, tuple[TokenInfo | None, float]] = {}
# A change saved in the admin makes every entry read before it stale: read again, but kept as the
# answer should the database be away meanwhile (it held the change: the next read will see it).
_invalidated_at = float("-inf")


def _mark_stale() -> None:
    global _invalidated_at
    _invalidated_at = time.monotonic()


def forget() -> None:
    """Drop every entry, stale copies too (tests: a new database)."""
    _cache.clear()
    _unknown.clear()


invalidation.register(_mark_stale)
invalidation.register(_unknown.clear)


def load_token(digest: str) -> TokenInfo | None:
    """One query: the token with this digest (and its team's limits), or None. The anonymous identity's
    row is created (no limits, every model) the first time it is asked for."""
    from gateway.models import ApiToken

    with borrowed_connection():
        row = ApiToken.objects.select_related("team").filter(digest=digest).first()
        if row is None and digest == crypto.ANONYMOUS_DIGEST:
            row = ApiToken.anonymous()
    if row is None:
        return None
    expires = row.expires_at.timestamp() if isinstance(row.expires_at, datetime) else None
    owner = "anonymous" if row.is_anonymous else "token"
    held = tuple(found for found in (Limits.of(owner, row), Limits.of("team", row.team)) if found is not None)
    return TokenInfo(
        row.id, row.name, row.prefix, row.team_id, row.active, expires, tuple(row.allowed_model_list()), held,
        row.is_anonymous, Limits.per_address(owner, row),
    )


def _cached(digest: str) -> tuple[bool, TokenInfo | None]:
    hit = _cache.get(digest) or _unknown.get(digest)
    if hit is not None and hit[1] > _invalidated_at and time.monotonic() - hit[1] < gateway_settings.CACHE_SECONDS:
        return True, hit[0]
    return False, None


def _stale(digest: str, exc: db.DatabaseUnavailable) -> TokenInfo:
    """The database is away: the token as last read, if that was within STALE_CACHE_SECONDS; else a 503."""
    hit = _cache.get(digest)
    if hit is None or time.monotonic() - hit[1] >= gateway_settings.STALE_CACHE_SECONDS:
        raise database_unavailable("this API token is not one it has seen recently") from exc
    return check(hit[0])


def _remember(digest: str, info: TokenInfo | None) -> TokenInfo | None:
    cache, other = (_cache, _unknown) if info is not None else (_unknown, _cache)
    other.pop(digest, None)
    if len(cache) >= MAX_CACHED_TOKENS:
        cache.clear()
    cache[digest] = (info, time.monotonic())
    return info


def check(info: TokenInfo | None) -> TokenInfo:
    """Raise the client's 401 unless the token exists, is active and has not expired."""
    if info is None:
        raise authentication_failed("Incorrect API key provided.")
    if info.anonymous and not info.active:
        raise authentication_failed("Anonymous access is switched off here: send an API token as "
                                    "'Authorization: Bearer <token>' or 'X-AUTH-TOKEN: <token>'.")
    if not info.active:
        raise authentication_failed("This API token has been revoked.")
    if info.expires_at is not None and time.time() >= info.expires_at:
        raise authentication_failed("This API token has expired.")
    return info


def _digest(raw: str | None) -> str:
    if not raw:
        raise not_authenticated()
    return crypto.token_digest(raw)


# Lookups in flight, so that requests arriving together with an uncached token share one query.
_loading: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Future[TokenInfo | None]] = {}


async def _load_once(digest: str) -> TokenInfo | None:
    key = (asyncio.get_running_loop(), digest)
    pending = _loading.get(key)
    if pending is None:
        pending = _loading[key] = asyncio.ensure_future(db.query(load_token, digest))
        pending.add_done_callback(lambda _: _loading.pop(key, None))
    return await asyncio.shield(pending)


async def authenticate(raw: str | None) -> TokenInfo:
    """The hot path's lookup: from the in-process cache, or one shared query in a worker thread."""
    digest = _digest(raw)
    found, info = _cached(digest)
    if found:
        return check(info)
    try:
        return check(_remember(digest, await _load_once(digest)))
    except db.DatabaseUnavailable as exc:
        return _stale(digest, exc)


def authenticate_sync(raw: str | None) -> TokenInfo:
    """The same lookup for Django/DRF views (already in a worker thread): the query runs inline."""
    digest = _digest(raw)
    found, info = _cached(digest)
    if found:
        return check(info)
    try:
        return check(_remember(digest, db.query_sync(load_token, digest)))
    except db.DatabaseUnavailable as exc:
        return _stale(digest, exc)


async def anonymous() -> TokenInfo:
    """The anonymous identity, as ``authenticate`` finds a token (cached; one shared query when not)."""
    digest = crypto.ANONYMOUS_DIGEST
    found, info = _cached(digest)
    return check(info if found else _remember(digest, await _load_once(digest)))


def anonymous_sync() -> TokenInfo:
    digest = crypto.ANONYMOUS_DIGEST
    found, info = _cached(digest)
    return check(info if found else _remember(digest, load_token(digest)))


class GatewayTokenAuthentication(BaseAuthentication):
    """The API token authentication class, for DRF views (``authenticate``) and hot views (``aauthenticate``).

    Both return ``(token, token)`` — the token is the request's ``user`` and ``auth`` — or None
    when the request carries no token (the permission check then answers 401), unless anonymous
    access is on: then a request without a token is the anonymous identity.
    """

    def authenticate(self, request: Request) -> tuple[TokenInfo, TokenInfo] | None:
        raw = raw_token_from({k.lower(): v for k, v in request.headers.items()}, request.query_params)
        if raw is None:
            if not gateway_settings.ANONYMOUS:
                return None
            info = anonymous_sync()
        else:
            info = authenticate_sync(raw)
        return info, info

    async def aauthenticate(self, request: HotRequest) -> tuple[TokenInfo, TokenInfo] | None:
        raw = raw_token_from(request.headers, request.query)
        if raw is None:
            if not gateway_settings.ANONYMOUS:
                return None
            info = await anonymous()
        else:
            info = await authenticate(raw)
        return info, info

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
