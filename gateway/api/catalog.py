"""The seed's catalogue endpoints: GET /v1/model-options and GET /v1/route-check (no upstream call)."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway.access.authentication import TokenInfo
from gateway.models import ModelEntry, ProviderAccount
from gateway.routing import registry as routing
from gateway.routing.registry import Entry, Route


def _provider_states() -> dict[str, dict[str, Any]]:
    return {
        p.name: {"configured": p.is_configured, "last_success_at": p.last_success_at, "last_error_at": p.last_error_at}
        for p in ProviderAccount.objects.filter(active=True)
    }


def _available(routes: tuple[Route, ...], states: dict[str, dict[str, Any]]) -> bool:
    """At least one deployment whose provider is configured and did not fail since it last worked."""
    for route in routes:
        state = states.get(route.account.name)
        if state is None or not state["configured"]:
            continue
        failed, worked = state["last_error_at"], state["last_success_at"]
        if failed is None or (worked is not None and worked > failed):
            return True
    return False


# The endpoints (paths under /v1/) a model serves: an embeddings model only embeddings, any other model
# every generating endpoint (each provider kind answers the Responses and Messages APIs, natively or
# translated).
EMBEDDING_ENDPOINTS = ("embeddings",)
GENERATING_ENDPOINTS = ("chat/completions", "completions", "responses", "messages", "messages/count_tokens")


def endpoints(entry: Entry) -> list[str]:
    return list(EMBEDDING_ENDPOINTS if "embeddings" in entry.capabilities else GENERATING_ENDPOINTS)


def option(entry: Entry, states: dict[str, dict[str, Any]]) -> dict[str, Any]:
    providers = list(dict.fromkeys(r.account.kind for r in entry.routes))
    return {
        "id": entry.name,
        "object": "model_option",
        "pattern": entry.is_pattern,
        "provider": providers[0] if providers else None,
        "providers": providers,
        "context_window": entry.context_window,
        "max_output_tokens": entry.max_output_tokens,
        # The first deployment's: a pattern passing the requested name through is priced per name.
        "pricing": entry.pricing(entry.upstream_model()).as_dict(),
        "capabilities": {c: c in entry.capabilities for c in ModelEntry.CAPABILITIES},
        "endpoints": endpoints(entry),
        "default": entry.is_default,
        "available": _available(entry.routes, states),
    }


class ModelOptions(APIView):
    """GET /v1/model-options: every model (and pattern) this token may use, with its metadata."""

    def get(self, request: Request) -> Response:
        token: TokenInfo = request.user
        registry = routing.current_sync()
        states = _provider_states()
        entries = [e for e in registry.entries if e.routes and token.allows(e.name, e.name)]
        default = registry.default.name if registry.default and token.allows(registry.default.name, registry.default.name) else None
        return Response({"object": "list", "default_model": default, "data": [option(e, states) for e in entries]})


class RouteCheck(APIView):
    """GET /v1/route-check?model=...[&provider=...]: which entry and rule match, and the deployment order."""

    def get(self, request: Request) -> Response:
        token: TokenInfo = request.user
        registry = routing.current_sync()
        provider = request.query_params.get("provider", "").strip() or None
        model, entry, routes = routing.choose(registry, request.query_params.get("model", "").strip() or None,
                                              provider, token)
        candidates = registry.candidates(model)
        listed = bool(candidates) and entry in candidates  # (else the provider's own, with no settings)
        rule = ("exact" if entry.name == model else "pattern") if listed else "provider"
        reason = (f"`{model}` is a registry name." if rule == "exact"
                  else f"`{model}` matches the pattern `{entry.name}`, the most specific of {len(candidates)} matching "
                  f"entr{'y' if len(candidates) == 1 else 'ies'}." if rule == "pattern"
                  else f"No registry entry serves `{model}`.")
        direct = provider is not None and not any(route in entry.routes for route in routes)
        if direct:
            reason += (f" No deployment of provider '{provider}' serves it: the name is sent as it is to the "
                       f"provider's active account{'s' if len(routes) > 1 else ''}"
                       f"{', priced by the price list' if not listed else ''}.")
        elif provider:
            reason += f" Only deployments of provider '{provider}' are kept."
        if not routes:
            reason += " It has no active deployment: requests get 503."
        return Response({
            "object": "route_check",
            "model": model,
            "provider": provider,
            "matched": {"entry": entry.name if listed else None, "rule": rule},
            "candidates": [{"entry": e.name, "rule": "exact" if e.name == model else "pattern"} for e in candidates],
            "deployments": [
                {"order": i + 1, "provider_account": r.account.name, "provider_kind": r.account.kind,
                 "upstream_model": r.model_for(model), "priority": r.priority, "weight": r.weight,
                 "pricing": entry.pricing(r.model_for(model)).as_dict()}
                for i, r in enumerate(routes)
            ],
            "ordering": "by priority (lowest first); deployments of equal priority are shuffled by weight on every "
                        "request, so their order here is one draw.",
            "reason": reason,
        })
