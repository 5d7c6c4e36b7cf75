"""The model registry as each worker holds it, and how a requested model finds its deployments.

An exact registry name wins; otherwise the most specific matching pattern (``gpt-4o*`` before
``gpt-*``). A request's ``provider`` field (a provider account's name, or a provider kind such as
``openai``: every active account of it) keeps only the deployments of that provider, looking through
every matching entry; when no entry has one, the requested model name goes as it is to that provider's
active accounts (the seed's explicit provider), priced by the entry if one matched, else by the price
list. Deployments are tried by priority (lowest first); within one priority the order is drawn at
random by weight.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from gateway import db, invalidation, redaction
from gateway.conf import gateway_settings
from gateway.db import borrowed_connection
from gateway.errors import database_unavailable, invalid_request, model_not_allowed, model_not_found
from gateway.routing import patterns
from gateway.routing.cooldowns import Key, Policy
from gateway.usage import prices
from providers.base import Account, Usage

# How many upstream models' prices an entry remembers (a pattern entry sees as many as clients name).
PRICINGS_KEPT = 256


class ModelAccess(Protocol):
    """What ``choose`` needs of the caller's credential (a ``TokenInfo``): which models it may use."""

    def allows(self, requested: str, entry_name: str | None = None) -> bool: ...


@dataclass(frozen=True)
class Route:
    account: Account
    upstream_model: str  # "" = pass the requested name through
    weight: int
    priority: int
    cooldown: Policy = Policy()  # the account's cooldown overrides

    def model_for(self, requested: str) -> str:
        return self.upstream_model or requested

    def key(self, requested: str) -> Key:
        """The deployment as cooldowns count it: (account name, upstream model)."""
        return self.account.name, self.model_for(requested)


@dataclass(frozen=True)
class Entry:
    id: int
    name: str
    context_window: int | None
    max_output_tokens: int | None
    input_price_per_million: Decimal | None  # None: not set here (the price list's is used)
    output_price_per_million: Decimal | None
    is_default: bool
    created: int
    routes: tuple[Route, ...]
    capabilities: frozenset[str] = frozenset()
    cached_input_price_per_million: Decimal | None = None
    fallbacks: tuple[str, ...] = ()  # exact names of the entries to try when all of its deployments fail
    _pricings: dict[str | None, prices.Pricing] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def is_pattern(self) -> bool:
        return "*" in self.name

    def upstream_model(self) -> str | None:
        """The upstream id its first deployment serves (its name when that passes the requested name
        through); None for a pattern passing the requested name through."""
        upstream = self.routes[0].upstream_model if self.routes else ""
        return upstream or (None if self.is_pattern else self.name)

    def pricing(self, upstream_model: str | None) -> prices.Pricing:
        """This entry's prices when ``upstream_model`` serves it, each from the entry or the price list
        (remembered per upstream model: a budget or tpm check and the log row ask on every request)."""
        known = self._pricings.get(upstream_model)
        if known is None:
            known = prices.pricing(self.input_price_per_million, self.cached_input_price_per_million,
                                   self.output_price_per_million, upstream_model)
            if len(self._pricings) < PRICINGS_KEPT:  # a pattern's upstream models are the clients' names
                self._pricings[upstream_model] = known
        return known

    def cost(self, usage: Usage | None, upstream_model: str | None = None) -> Decimal | None:
        """USD for this usage served by ``upstream_model``; None when a price it needs is unknown."""
        return self.pricing(upstream_model or (None if self.is_pattern else self.name)).cost(usage)


@dataclass
class Registry:
    entries: list[Entry]
    accounts: list[Account] = field(default_factory=list)  # the active ones: what ``provider`` may name
    exact: dict[str, Entry] = field(init=False)
    patterns: list[Entry] = field(init=False)
    default: Entry | None = field(init=False)

    def __post_init__(self) -> None:
        self.exact = {e.name: e for e in self.entries if not e.is_pattern}
        self.patterns = sorted((e for e in self.entries if e.is_pattern), key=lambda e: (patterns.specificity(e.name), e.name))
        self.default = next((e for e in self.entries if e.is_default), None)

    def candidates(self, model: str) -> list[Entry]:
        """Every entry that serves this name, best match first."""
        found = [self.exact[model]] if model in self.exact else []
        return found + [e for e in self.patterns if patterns.matches(e.name, model)]

    def resolve(self, model: str, provider: str | None = None) -> tuple[Entry, list[Route]] | None:
        """The entry for ``model`` and its deployments in the order to try; None if nothing serves it.
        With ``provider``, the deployments of that provider; else, if it names active accounts, the
        requested name as it is on each (``direct``)."""
        candidates = self.candidates(model)
        for entry in candidates:
            routes = [r for r in entry.routes if provider is None or provider in (r.account.kind, r.account.name)]
            if routes:
                return entry, order_routes(routes)
            if provider is None:
                return entry, []
        if provider is None:
            return None
        return self.direct(model, provider, candidates[0] if candidates else None)

    def direct(self, model: str, provider: str, entry: Entry | None) -> tuple[Entry, list[Route]] | None:
        """``model`` sent as it is to the active accounts ``provider`` names (the account of that name,
        else every account of that kind, in name order); None if it names none. Without a matching
        entry, one of the model's own name with no settings: prices from the price list."""
        accounts = [a for a in self.accounts if a.name == provider] or \
            sorted((a for a in self.accounts if a.kind == provider), key=lambda a: a.name)
        if not accounts:
            return None
        routes = [Route(account, "", 1, 0) for account in accounts]
        if entry is None:
            entry = Entry(0, model, None, None, None, None, False, 0, ())
        return entry, routes

    def listed(self) -> list[Entry]:
        """Exact names, the ones a model list can show."""
        return [e for e in self.entries if not e.is_pattern]


def choose(registry: Registry, model: str | None, provider: str | None, token: ModelAccess) -> tuple[str, Entry, list[Route]]:
    """The model to serve (the registry's default when none is named), its entry and its deployments
    in the order to try (possibly none). Raises the client's 400 / 404 / 403."""
    if model is None:
        if registry.default is None:
            raise invalid_request("Missing required parameter: 'model'.", "model", "missing_required_parameter")
        model = registry.default.name
    resolved = registry.resolve(model, provider)
    if resolved is None:
        if provider is not None:
            raise invalid_request(f"No active provider account is named '{provider}' or is of that kind.",
                                  "provider", "unknown_provider")
        raise model_not_found(model)
    entry, routes = resolved
    if not token.allows(model, entry.name):
        raise model_not_allowed(model)
    return model, entry, routes


def order_routes(routes: list[Route]) -> list[Route]:
    """By priority; within a priority a weighted random order (Efraimidis–Spirakis keys)."""
    if len(routes) == 1:
        return routes
    return sorted(routes, key=lambda r: (r.priority, -(random.random() ** (1.0 / max(r.weight, 1)))))


def load_registry() -> Registry:
    """Read active entries, deployments and every provider account (keys decrypted once each) in three
    queries; every account's key, in use or not, is handed to the redactor."""
    from gateway.models import Deployment, ModelEntry, ProviderAccount

    with borrowed_connection():
        rows = list(ProviderAccount.objects.all())
        accounts = {p.id: p.as_account() for p in rows}
        policies = {p.id: Policy(p.cooldown_failures, p.cooldown_window_seconds, p.cooldown_seconds) for p in rows}
        deployments = list(Deployment.objects.filter(active=True, provider__active=True, model__active=True))
        models = list(ModelEntry.objects.filter(active=True))
    routes: dict[int, list[Route]] = {}
    for dep in deployments:
        routes.setdefault(dep.model_id, []).append(
            Route(accounts[dep.provider_id], dep.upstream_model, dep.weight, dep.priority, policies[dep.provider_id]))
    entries = [
        Entry(
            m.id, m.name, m.context_window, m.max_output_tokens, m.input_price_per_million,
            m.output_price_per_million, m.is_default, int(m.created_at.timestamp()),
            tuple(sorted(routes.get(m.id, []), key=lambda r: r.priority)),
            frozenset(c for c in ModelEntry.CAPABILITIES if getattr(m, c)), m.cached_input_price_per_million,
            tuple(m.fallback_names()),
        )
        for m in models
    ]
    prices.price_list()  # read here, off the event loop, rather than by the first request's log row
    redaction.install(account.api_key for account in accounts.values())
    return Registry(entries, [accounts[p.id] for p in rows if p.active])


class _Holder:
    registry: Registry | None = None
    loaded_at: float = 0.0
    changed: bool = False  # an admin change since it was read: read again (kept while the database is away)
    loading: asyncio.Future | None = None

    def clear(self) -> None:
        self.changed = True

    def forget(self) -> None:
        """Drop it, stale copy too (tests: a new database)."""
        self.registry = None

    def fresh(self) -> Registry | None:
        if self.registry is not None and not self.changed and \
                time.monotonic() - self.loaded_at < gateway_settings.CACHE_SECONDS:
            return self.registry
        return None

    def stale(self, exc: db.DatabaseUnavailable) -> Registry:
        """The database is away: the registry as last read, within STALE_CACHE_SECONDS; else a 503."""
        if self.registry is None or time.monotonic() - self.loaded_at >= gateway_settings.STALE_CACHE_SECONDS:
            raise database_unavailable("this worker has no recent copy of the model registry") from exc
        return self.registry

    def store(self, registry: Registry) -> Registry:
        self.registry, self.loaded_at, self.changed = registry, time.monotonic(), False
        return registry


_holder = _Holder()
invalidation.register(_holder.clear)


async def current() -> Registry:
    """This worker's registry; reloaded (once, however many requests wait) when stale. While the
    database is unavailable, the last one read (for up to STALE_CACHE_SECONDS)."""
    registry = _holder.fresh()
    if registry is not None:
        return registry
    loop = asyncio.get_running_loop()
    pending = _holder.loading
    if pending is None or pending.get_loop() is not loop:
        pending = _holder.loading = loop.create_task(db.query(load_registry))
    try:
        return _holder.store(await asyncio.shield(pending))
    except db.DatabaseUnavailable as exc:
        return _holder.stale(exc)
    finally:
        if _holder.loading is pending and pending.done():
            _holder.loading = None


def current_sync() -> Registry:
    registry = _holder.fresh()
    if registry is not None:
        return registry
    try:
        return _holder.store(db.query_sync(load_registry))
    except db.DatabaseUnavailable as exc:
        return _holder.stale(exc)
