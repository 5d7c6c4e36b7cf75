"""A request's attempts: its entry's deployments, then its fallback models' (allowed, each once, bounded)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from django.test import override_settings

from gateway.routing import registry as routing
from gateway.routing.fallbacks import targets
from providers.base import Account
from tests.conftest import make_model, make_provider


def entry(name: str, *routes: routing.Route, fallbacks: tuple[str, ...] = ()) -> routing.Entry:
    return routing.Entry(0, name, None, None, Decimal("1"), Decimal("2"), False, 0, tuple(routes),
                         fallbacks=fallbacks)


def route(name: str, model: str = "", priority: int = 0) -> routing.Route:
    return routing.Route(Account(name, "openai" if name.startswith("o") else "anthropic", "", "k"), model, 1, priority)


class Token:
    def __init__(self, *allowed: str) -> None:
        self.allowed = allowed

    def allows(self, requested: str, entry_name: str | None = None) -> bool:
        return not self.allowed or requested in self.allowed


def plan(registry: routing.Registry, model: str, token: Token | None = None, provider: str | None = None) -> list[tuple]:
    token = token or Token()
    found, chosen, routes = routing.choose(registry, model, provider, token)
    return [(t.entry.name, t.route.account.name, t.upstream_model)
            for t in targets(registry, chosen, found, routes, provider, token)]


REGISTRY = routing.Registry([
    entry("claude", route("anth-1", "claude-x"), route("anth-1", "claude-y", 1), fallbacks=("gpt", "mini")),
    entry("gpt", route("oa-1"), fallbacks=("claude", "mini")),  # (a cycle back to claude)
    entry("mini", route("oa-2", "gpt-mini-2025")),
])


def test_the_entrys_deployments_come_first_then_each_fallback_once_in_order() -> None:
    assert plan(REGISTRY, "claude") == [("claude", "anth-1", "claude-x"), ("claude", "anth-1", "claude-y"),
                                        ("gpt", "oa-1", "gpt"), ("mini", "oa-2", "gpt-mini-2025")]


def test_a_fallback_the_token_may_not_use_is_left_out() -> None:
    assert [name for name, *_ in plan(REGISTRY, "claude", Token("claude", "mini"))] == ["claude", "claude", "mini"]


def test_a_requested_provider_holds_for_the_fallbacks_too() -> None:
    assert sorted(plan(REGISTRY, "claude", provider="anthropic")) == [("claude", "anth-1", "claude-x"),
                                                                       ("claude", "anth-1", "claude-y")]


def test_unknown_fallback_names_are_skipped_and_attempts_bounded() -> None:
    registry = routing.Registry([replace(REGISTRY.exact["claude"], fallbacks=("gone", "gpt", "mini"))] +
                                [REGISTRY.exact["gpt"], REGISTRY.exact["mini"]])
    assert [name for name, *_ in plan(registry, "claude")] == ["claude", "claude", "gpt", "mini"]
    with override_settings(GATEWAY={"MAX_ATTEMPTS": 3}):
        assert len(plan(registry, "claude")) == 3


@pytest.mark.django_db
def test_the_registry_loads_fallbacks_and_cooldown_overrides_in_its_three_queries(django_assert_num_queries) -> None:
    account = make_provider("anth", kind="anthropic", cooldown_failures=7, cooldown_seconds=5.0)
    make_model("claude", (account, "claude-x"), fallbacks="gpt\nmini")
    with django_assert_num_queries(3):
        registry = routing.load_registry()
    claude = registry.exact["claude"]
    assert claude.fallbacks == ("gpt", "mini")
    assert claude.routes[0].cooldown == routing.Policy(7, None, 5.0)
