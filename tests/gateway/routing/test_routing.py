"""How a requested model name finds its registry entry and deployments."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from gateway.routing import patterns
from gateway.routing import registry as routing
from providers.base import Account, Usage
from tests.conftest import make_model, make_provider


def entry(name: str, *routes: routing.Route, default: bool = False) -> routing.Entry:
    return routing.Entry(0, name, None, None, Decimal("1"), Decimal("2"), default, 0, tuple(routes))


def route(kind: str, model: str = "", weight: int = 1, priority: int = 0, name: str | None = None) -> routing.Route:
    return routing.Route(Account(name or kind, kind, "", "k"), model, weight, priority)


@pytest.mark.parametrize(("pattern", "name", "expected"), [
    ("gpt-*", "gpt-4o", True), ("gpt-*", "chatgpt-4o", False), ("*gemini*", "models/gemini-pro", True),
    ("@cf/*", "@cf/meta/llama-4-scout-17b-16e-instruct", True), ("o1*", "o1", True),
    ("gpt-4.1", "gpt-441", False), ("a?b", "axb", False), ("a?b", "a?b", True),
])
def test_star_is_the_only_wildcard(pattern: str, name: str, expected: bool) -> None:
    assert patterns.matches(pattern, name) is expected


def test_exact_name_beats_patterns_and_specific_patterns_beat_general_ones() -> None:
    registry = routing.Registry([entry("gpt-*", route("openai")), entry("gpt-4o*", route("openai")),
                                 entry("gpt-4o-mini", route("openai"))])
    assert registry.resolve("gpt-4o-mini")[0].name == "gpt-4o-mini"
    assert registry.resolve("gpt-4o-2024-08-06")[0].name == "gpt-4o*"
    assert registry.resolve("gpt-3.5-turbo")[0].name == "gpt-*"
    assert registry.resolve("claude-3") is None


def test_pattern_deployment_without_model_passes_the_requested_name_through() -> None:
    _, routes = routing.Registry([entry("@cf/*", route("cloudflare"))]).resolve("@cf/meta/llama-3")
    assert routes[0].model_for("@cf/meta/llama-3") == "@cf/meta/llama-3"
    assert route("openai", "gpt-4o").model_for("fast") == "gpt-4o"


def test_provider_field_keeps_only_that_providers_deployments_across_matching_entries() -> None:
    registry = routing.Registry([entry("gpt-4", route("openai", name="oa")), entry("*", route("openai_compatible"))])
    found, routes = registry.resolve("gpt-4", provider="openai_compatible")
    assert found.name == "*" and [r.account.kind for r in routes] == ["openai_compatible"]
    assert registry.resolve("gpt-4", provider="oa")[1][0].account.name == "oa"
    assert registry.resolve("gpt-4", provider="gemini") is None


def test_priorities_are_tried_in_order_and_weights_share_traffic() -> None:
    heavy, light, fallback = route("a", weight=3), route("b", weight=1), route("c", priority=1)
    firsts = Counter(routing.order_routes([heavy, light, fallback])[0].account.kind for _ in range(4000))
    assert set(firsts) == {"a", "b"}
    assert 2.4 < firsts["a"] / firsts["b"] < 3.8
    assert all(routing.order_routes([fallback, heavy, light])[-1] is fallback for _ in range(50))


def test_cost_uses_prices_per_million_tokens() -> None:
    assert entry("m").cost(Usage(1_000_000, 500_000, 1_500_000)) == Decimal("2")


@pytest.mark.django_db
def test_registry_loads_only_active_rows_and_finds_the_default(django_assert_num_queries) -> None:
    live, off = make_provider("live"), make_provider("off", active=False)
    make_model("gpt-4o", (live, "gpt-4o-2024-08-06"), (off, "gpt-4o"), is_default=True)
    make_model("retired", (live, "x"), active=False)
    with django_assert_num_queries(3):  # every account (its key also for the redactor), deployments, models
        registry = routing.load_registry()
    assert [e.name for e in registry.entries] == ["gpt-4o"]
    assert registry.default.name == "gpt-4o"
    assert [r.account.name for r in registry.exact["gpt-4o"].routes] == ["live"]
    assert registry.exact["gpt-4o"].routes[0].account.api_key  # decrypted for the adapter


@pytest.mark.django_db(transaction=True)
def test_saving_a_model_in_the_database_refreshes_the_cached_registry() -> None:
    account = make_provider()
    make_model("first", (account, "a"))
    assert "first" in routing.current_sync().exact
    make_model("second", (account, "b"))
    assert "second" in routing.current_sync().exact
