"""The price list (gateway/usage/prices.yaml) and how a request's prices are chosen and its cost computed."""

from __future__ import annotations

import importlib.util
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from django.apps import apps

from gateway.config.file import DEFAULTS, apply, load
from gateway.models import ModelEntry
from gateway.routing import registry as routing
from gateway.usage import prices
from providers.base import Usage

D = Decimal
MIGRATIONS = Path(prices.__file__).resolve().parent.parent / "migrations"


def listed(model: str) -> prices.Rates:
    found = prices.price_list().lookup(model)
    assert found is not None, f"{model} is not in the price list"
    return found


# -- the list ----------------------------------------------------------------------------------

def test_the_shipped_list_has_a_date_and_its_sources() -> None:
    assert prices.price_list().date == "2026-12-01"
    header = prices.LIST_FILE.read_text()
    assert "prices as of 2026-12-01" in header
    for page in ("https://platform.openai.com/docs/pricing", "https://docs.anthropic.com/en/docs/about-claude/pricing",
                 "https://ai.google.dev/gemini-api/docs/pricing",
                 "https://developers.cloudflare.com/workers-ai/platform/pricing/"):
        assert page in header


@pytest.mark.parametrize("model", [
    "gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-2024-11-20", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "gpt-4.1",
    "gpt-4.1-mini", "gpt-4.1-nano", "o1", "o1-mini", "o3", "o3-mini", "o4-mini", "o4-mini-2025-04-16",
    "text-embedding-3-small", "text-embedding-3-large", "claude-3-5-sonnet-20241022", "claude-3-5-haiku-latest",
    "claude-3-7-sonnet-20250219", "claude-sonnet-4-20250514", "claude-opus-4-1-20250805",
    "claude-sonnet-4-5-20250929", "claude-haiku-4-5", "claude-opus-4-5", "gemini-1.5-pro", "gemini-1.5-flash-002",
    "gemini-2.0-flash", "gemini-2.0-flash-lite", "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite",
    "models/gemini-2.0-flash", "@cf/meta/llama-4-scout-17b-16e-instruct", "@cf/baai/bge-base-en-v1.5",
])
def test_common_upstream_models_are_listed(model: str) -> None:
    assert listed(model).input is not None


def test_every_upstream_model_of_the_default_registry_is_listed_at_the_seeds_prices() -> None:
    seed = yaml.safe_load(DEFAULTS.read_text())
    checked = 0
    for model in seed["models"]:
        for deployment in model.get("deployments", []):
            if not deployment.get("model"):
                continue  # a pattern passing the requested name through
            rates = listed(deployment["model"])
            for kind in prices.KINDS:
                if f"{kind}_price_per_million" in model:
                    assert D(str(model[f"{kind}_price_per_million"])) == getattr(rates, kind), (model["name"], kind)
            if rates.cached_input is not None and "input_price_per_million" in model:
                assert "cached_input_price_per_million" in model, f"{model['name']}: the cached price is published"
            checked += 1
    assert checked == 22  # every exact entry of the seed


def test_lookup_rules_aliases_dated_snapshots_latest_and_case() -> None:
    gpt_4o = listed("gpt-4o")
    assert listed("gpt-4o-2024-08-06") == gpt_4o  # an alias
    assert listed("gpt-4o-2031-01-01") == gpt_4o  # a snapshot not listed: the rule
    assert listed("claude-haiku-4-5-20991231") == listed("claude-haiku-4-5")
    assert listed("claude-3-7-sonnet-latest") == listed("claude-3-7-sonnet")
    assert listed("GPT-4O") == gpt_4o
    assert listed("gpt-4o-2024-05-13") == prices.Rates(D("5"), None, D("15"))  # its own price wins over the rule
    assert prices.price_list().lookup("gpt-4o-extra") is None
    assert prices.price_list().lookup("llama3") is None


@pytest.mark.parametrize(("document", "problem"), [
    ({"models": {}}, "needs a `date`"),
    ({"date": "x", "models": {"m": {"input": -1}}}, "models.m.input: must be a number >= 0"),
    ({"date": "x", "models": {"m": {"input": True}}}, "models.m.input: must be a number >= 0"),
    ({"date": "x", "models": {"m": {"colour": 1}}}, "models.m: a mapping"),
    ({"date": "x", "models": {"m": {"input": 1}, "n": {"input": 1, "aliases": ["M"]}}}, "'M' is listed twice"),
    ({"date": "x", "currency": "EUR", "models": {}}, "top level"),
])
def test_a_malformed_list_is_refused_with_the_place(document: dict, problem: str) -> None:
    with pytest.raises(prices.PriceListError, match=problem.replace("(", r"\(").replace("`", ".")):
        prices.parse(document)


# -- which price, and the cost -----------------------------------------------------------------

def test_each_price_is_the_entrys_when_set_else_the_lists_for_the_upstream_model() -> None:
    listed_only = prices.pricing(None, None, None, "gpt-4o-2024-08-06")
    assert listed_only.values == (D("2.5"), D("1.25"), D("10")) and set(listed_only.sources) == {prices.LISTED}
    mixed = prices.pricing(D("2"), None, D("0"), "gpt-4o")  # an explicit 0 is free, not "unset"
    assert mixed.values == (D("2"), D("1.25"), D("0"))
    assert mixed.sources == (prices.ENTRY, prices.LISTED, prices.ENTRY)
    own_model = prices.pricing(D("1"), None, D("2"), "my-finetune")
    assert own_model.values == (D("1"), D("1"), D("2")) and own_model.sources[1] == prices.INPUT
    unknown = prices.pricing(None, None, None, "my-finetune")
    assert unknown.values == (None, None, None) and unknown.state() == prices.UNKNOWN
    per_model = prices.pricing(None, None, None, None)  # a pattern passing the requested name through
    assert set(per_model.sources) == {prices.PER_MODEL} and per_model.state() == prices.LISTED


def test_cost_prices_cached_tokens_at_the_cached_rate() -> None:
    pricing = prices.pricing(None, None, None, "gpt-4o")
    # 200 uncached x 2.50 + 800 cached x 1.25 + 100 output x 10, per million
    assert pricing.cost(Usage(1000, 100, 1100, cached_tokens=800)) == D("0.0025")
    assert pricing.cost(Usage(1000, 100, 1100)) == D("0.0035")
    no_cached_rate = prices.pricing(D("3"), None, D("15"), "my-model")
    assert no_cached_rate.cost(Usage(1000, 0, 1000, cached_tokens=1000)) == D("0.003")  # at the input price


def test_cost_is_unknown_only_when_used_tokens_have_no_price() -> None:
    embedding = prices.pricing(D("0.02"), None, None, "text-embedding-3-small")
    assert embedding.cost(Usage(1_000_000, 0, 1_000_000)) == D("0.02")  # no output tokens, no output price needed
    assert embedding.cost(Usage(10, 1, 11)) is None
    unknown = prices.pricing(None, None, None, "my-finetune")
    assert unknown.cost(Usage(10, 5, 15)) is None
    assert unknown.cost(None) == 0 and unknown.cost(Usage()) == 0  # nothing used: nothing to price
    free = prices.pricing(D("0"), D("0"), D("0"), "llama3")
    assert free.cost(Usage(10, 5, 15)) == 0


def test_registry_entries_price_by_the_upstream_model() -> None:
    pattern = routing.Entry(1, "gpt-4o*", None, None, None, None, False, 0, ())
    usage = Usage(1_000_000, 1_000_000, 2_000_000)
    assert pattern.cost(usage, "gpt-4o-2024-08-06") == D("12.5")
    assert pattern.cost(usage, "gpt-4o-mini") == D("0.75")
    assert pattern.cost(usage) is None  # no upstream model: no list price
    priced = routing.Entry(2, "house-model", None, None, D("1"), D("2"), False, 0, ())
    assert priced.cost(usage, "gpt-4o") == D("3")  # the entry's prices win over the list's


# -- migrating existing prices -----------------------------------------------------------------

@pytest.mark.django_db
def test_the_migration_unsets_only_the_old_default_prices() -> None:
    path = next(MIGRATIONS.glob("*_prices.py"))
    spec = importlib.util.spec_from_file_location("prices_migration", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    ModelEntry.objects.create(name="never-priced", input_price_per_million=0, output_price_per_million=0)
    ModelEntry.objects.create(name="embedding", input_price_per_million=D("0.02"), output_price_per_million=0)
    ModelEntry.objects.create(name="priced", input_price_per_million=D("3"), output_price_per_million=D("15"))
    migration.unset_default_prices(apps, None)
    got = {m.name: (m.input_price_per_million, m.output_price_per_million) for m in ModelEntry.objects.all()}
    assert got == {"never-priced": (None, None), "embedding": (D("0.02"), D("0")), "priced": (D("3"), D("15"))}


@pytest.mark.django_db
def test_config_files_set_and_unset_the_cached_price_and_reapplying_changes_nothing() -> None:
    document = {"models": [{"name": "m", "input_price_per_million": 3, "cached_input_price_per_million": "0.3",
                            "output_price_per_million": 15}]}
    apply(document)
    apply(document)
    entry = ModelEntry.objects.get(name="m")
    assert (entry.input_price_per_million, entry.cached_input_price_per_million) == (D("3"), D("0.3"))
    apply({"models": [{"name": "m", "cached_input_price_per_million": None}]})
    entry.refresh_from_db()
    assert entry.cached_input_price_per_million is None and entry.output_price_per_million == D("15")


@pytest.mark.django_db
def test_the_default_registrys_patterns_have_no_prices_of_their_own() -> None:
    apply(load(DEFAULTS), environ={}, placeholders=True)
    for pattern in ModelEntry.objects.filter(name__contains="*"):
        assert pattern.pricing().state() == prices.LISTED, pattern.name
    assert ModelEntry.objects.get(name="gpt-4o").pricing().sources == (prices.ENTRY,) * 3
