"""What a request may try, in order: its entry's deployments, then its fallback models' deployments.

An entry's ``fallbacks`` name other (exact, active) entries to try when all of its own deployments
fail; theirs are followed too, breadth-first, each entry once (so a cycle ends), and only those the
caller's token may use. A request's ``provider`` keeps only that provider's deployments, in the
fallbacks as well. ``GATEWAY_MAX_ATTEMPTS`` bounds the whole list.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.conf import gateway_settings
from gateway.routing.cooldowns import Key
from gateway.routing.registry import Entry, ModelAccess, Registry, Route, order_routes


@dataclass(frozen=True, slots=True)
class Target:
    """One attempt: a deployment (``route``) of ``entry``, asked for the model ``model`` (the request's
    model for its own entry, the fallback entry's name for a fallback)."""

    entry: Entry
    model: str
    route: Route

    @property
    def upstream_model(self) -> str:
        return self.route.model_for(self.model)

    @property
    def key(self) -> Key:
        return self.route.key(self.model)


def _serves(route: Route, provider: str | None) -> bool:
    return provider is None or provider in (route.account.kind, route.account.name)


def targets(registry: Registry, entry: Entry, model: str, routes: list[Route], provider: str | None,
            token: ModelAccess) -> list[Target]:
    """``routes`` (the entry's deployments in the order to try), then the fallbacks' deployments."""
    found = [Target(entry, model, route) for route in routes]
    limit = max(1, gateway_settings.MAX_ATTEMPTS)
    seen = {entry.name}
    queue = list(entry.fallbacks)
    while queue and len(found) < limit:
        name = queue.pop(0)
        fallback = registry.exact.get(name)
        if fallback is None or name in seen:
            continue
        seen.add(name)
        queue.extend(fallback.fallbacks)
        if not token.allows(name, name):  # a token's allow-list holds for fallbacks too
            continue
        found += [Target(fallback, name, route)
                  for route in order_routes([r for r in fallback.routes if _serves(r, provider)])]
    return found[:limit]
