"""/v1/model-options and /v1/route-check: the seed's catalogue and routing debug endpoints."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from gateway.models import ModelEntry
from tests.conftest import make_model, make_provider, make_token
from tests.openai_schema import assert_valid

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry() -> dict:
    main = make_provider("openai-main", base_url="http://127.0.0.1:9/v1")
    backup = make_provider("backup", kind="openai_compatible", base_url="http://127.0.0.1:9/v1", api_key="")
    keyless = make_provider("keyless", base_url="http://127.0.0.1:9/v1", api_key="")
    make_model("gpt-4o-mini", (main, "gpt-4o-mini"), (backup, "llama3"), context_window=128000,
               input_price_per_million="0.15", output_price_per_million="0.60", vision=True, is_default=True)
    make_model("gpt-*", (main, ""))
    make_model("gpt-4o*", (main, ""))
    make_model("broken", (keyless, "x"))
    ModelEntry.objects.create(name="no-deployments")
    return {"token": make_token(), "main": main}


def get(client: Client, path: str, token: str, **params: str):
    return client.get(path, params, HTTP_X_AUTH_TOKEN=token)


def test_model_options_lists_metadata_capabilities_and_availability(client: Client, registry: dict) -> None:
    body = get(client, "/v1/model-options", registry["token"]).json()
    options = {o["id"]: o for o in body["data"]}
    assert set(options) == {"gpt-4o-mini", "gpt-*", "gpt-4o*", "broken"} and body["default_model"] == "gpt-4o-mini"
    mini = options["gpt-4o-mini"]
    assert mini["provider"] == "openai" and mini["providers"] == ["openai", "openai_compatible"]
    assert mini["context_window"] == 128000 and mini["pricing"]["input_per_million"] == 0.15
    assert mini["capabilities"] == {"streaming": True, "tools": True, "vision": True, "embeddings": False}
    assert mini["available"] and options["gpt-*"]["pattern"]
    assert not options["broken"]["available"]  # its only provider has no key


def test_model_options_show_the_effective_pricing_and_where_it_comes_from(client: Client, registry: dict) -> None:
    options = {o["id"]: o["pricing"] for o in get(client, "/v1/model-options", registry["token"]).json()["data"]}
    assert options["gpt-4o-mini"] == {  # the entry's prices; the cached price is the list's for gpt-4o-mini
        "input_per_million": 0.15, "cached_input_per_million": 0.075, "output_per_million": 0.6, "currency": "USD",
        "sources": {"input": "entry", "cached_input": "price_list", "output": "entry"},
        "price_list_date": "2026-12-01"}
    assert options["gpt-*"]["input_per_million"] is None  # priced per requested model
    assert set(options["gpt-*"]["sources"].values()) == {"price_list_per_model"}
    assert options["broken"]["sources"] == {"input": "unknown", "cached_input": "unknown", "output": "unknown"}
    assert "price_list_date" not in options["broken"]


def test_route_check_shows_the_pricing_of_each_deployment(client: Client, registry: dict) -> None:
    snapshot = get(client, "/v1/route-check", registry["token"], model="gpt-4o-2024-08-06").json()
    assert snapshot["deployments"][0]["pricing"]["input_per_million"] == 2.5  # the list's gpt-4o price
    assert snapshot["deployments"][0]["pricing"]["sources"]["output"] == "price_list"
    mini = get(client, "/v1/route-check", registry["token"], model="gpt-4o-mini").json()
    backup = mini["deployments"][1]["pricing"]  # llama3: the entry's prices, no cached price anywhere
    assert (backup["input_per_million"], backup["cached_input_per_million"]) == (0.15, 0.15)
    assert backup["sources"]["cached_input"] == "input_price"


def test_a_provider_failing_since_its_last_success_makes_its_models_unavailable(client: Client, registry: dict) -> None:
    main = registry["main"]
    main.last_success_at = timezone.now() - timezone.timedelta(minutes=5)
    main.last_error_at = timezone.now()
    main.save()
    options = {o["id"]: o for o in get(client, "/v1/model-options", registry["token"]).json()["data"]}
    assert options["gpt-4o-mini"]["available"]  # the backup still serves it
    assert not options["gpt-*"]["available"]


def test_model_options_show_only_what_the_token_may_use(client: Client, registry: dict) -> None:
    narrow = make_token("narrow", allowed_models="gpt-4o-mini")
    body = get(client, "/v1/model-options", narrow).json()
    assert [o["id"] for o in body["data"]] == ["gpt-4o-mini"]


def test_route_check_explains_the_most_specific_pattern_and_deployment_order(client: Client, registry: dict) -> None:
    body = get(client, "/v1/route-check", registry["token"], model="gpt-4o-2024-08-06").json()
    assert body["matched"] == {"entry": "gpt-4o*", "rule": "pattern"}
    assert [c["entry"] for c in body["candidates"]] == ["gpt-4o*", "gpt-*"]
    assert body["deployments"][0]["upstream_model"] == "gpt-4o-2024-08-06"
    assert "gpt-4o*" in body["reason"]


def test_route_check_exact_name_with_fallbacks_and_provider_filter(client: Client, registry: dict) -> None:
    body = get(client, "/v1/route-check", registry["token"], model="gpt-4o-mini").json()
    assert body["matched"]["rule"] == "exact"
    assert [(d["provider_account"], d["upstream_model"], d["order"]) for d in body["deployments"]] == [
        ("openai-main", "gpt-4o-mini", 1), ("backup", "llama3", 2)]
    only = get(client, "/v1/route-check", registry["token"], model="gpt-4o-mini", provider="openai_compatible").json()
    assert [d["provider_account"] for d in only["deployments"]] == ["backup"]


def test_route_check_without_model_uses_the_default(client: Client, registry: dict) -> None:
    assert get(client, "/v1/route-check", registry["token"]).json()["model"] == "gpt-4o-mini"


def test_route_check_errors(client: Client, registry: dict) -> None:
    unknown = get(client, "/v1/route-check", registry["token"], model="claude-3")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    assert_valid("ErrorResponse", unknown.json())
    wrong_provider = get(client, "/v1/route-check", registry["token"], model="gpt-4o-mini", provider="gemini")
    assert wrong_provider.status_code == 400 and wrong_provider.json()["error"]["param"] == "provider"
    narrow = make_token("narrow", allowed_models="gpt-4o-mini")
    assert get(client, "/v1/route-check", narrow, model="gpt-4").status_code == 403
    assert client.get("/v1/route-check", {"model": "gpt-4"}).status_code == 401
    empty = get(client, "/v1/route-check", registry["token"], model="no-deployments").json()
    assert empty["deployments"] == [] and "503" in empty["reason"]


def test_model_options_list_the_endpoints_each_model_serves(client: Client, registry: dict) -> None:
    make_model("text-embedding-3-small", (registry["main"], "text-embedding-3-small"), embeddings=True)
    options = {o["id"]: o for o in get(client, "/v1/model-options", registry["token"]).json()["data"]}
    assert options["gpt-4o-mini"]["endpoints"] == ["chat/completions", "completions", "responses", "messages",
                                                   "messages/count_tokens"]
    assert options["text-embedding-3-small"]["endpoints"] == ["embeddings"]
