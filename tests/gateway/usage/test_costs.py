"""Logged costs end to end (live gateway -> fake OpenAI upstream): list prices for pattern-routed snapshots,
entry prices winning, unknown prices logged and shown as unknown, cached tokens, estimated usage."""

from __future__ import annotations

import time
from decimal import Decimal

import httpx
import orjson
import pytest
from django.test import Client
from django.urls import reverse

from gateway.models import RequestLog
from tests.conftest import LiveGateway, make_model, make_provider, make_token

MILLION = Decimal(1_000_000)


@pytest.fixture
def setup(live_gateway: LiveGateway, fake_openai) -> dict:
    account = make_provider(base_url=fake_openai.base_url)
    return {"gateway": live_gateway, "upstream": fake_openai, "account": account, "token": make_token()}


def chat(setup: dict, model: str, stream: bool = False) -> RequestLog:
    """One chat request; its log row (waited for: with estimated usage it is queued after the answer)."""
    before = RequestLog.objects.count()
    response = httpx.post(f"{setup['gateway'].v1}/chat/completions", headers={"Authorization": f"Bearer {setup['token']}"},
                          content=orjson.dumps({"model": model, "stream": stream,
                                                "messages": [{"role": "user", "content": "price this request please, all of it"}]}))
    assert response.status_code == 200, response.text
    deadline = time.monotonic() + 10
    while RequestLog.objects.count() == before and time.monotonic() < deadline:
        setup["gateway"].flush_logs()
        time.sleep(0.02)
    return RequestLog.objects.order_by("-created_at").first()


def priced(row: RequestLog, input_price: str, output_price: str, cached_price: str = "0", cached: int = 0) -> Decimal:
    total = ((row.prompt_tokens - cached) * Decimal(input_price) + cached * Decimal(cached_price)
             + row.completion_tokens * Decimal(output_price))
    return (total / MILLION).quantize(Decimal("0.00000001"))


def test_a_pattern_routed_dated_snapshot_is_priced_from_the_list(setup: dict) -> None:
    make_model("gpt-4o*", (setup["account"], ""))  # no prices of its own, the name passed through
    row = chat(setup, "gpt-4o-2024-08-06")
    assert row.resolved_model == "gpt-4o-2024-08-06" and row.prompt_tokens > 0 and not row.usage_estimated
    assert row.cost == priced(row, "2.50", "10.00") > 0


def test_the_entrys_price_wins_over_the_list(setup: dict) -> None:
    make_model("gpt-4o", (setup["account"], "gpt-4o"), input_price_per_million="1", output_price_per_million="1")
    row = chat(setup, "gpt-4o")
    assert row.cost == priced(row, "1", "1")


@pytest.mark.parametrize("stream", [False, True])
def test_cached_prompt_tokens_are_priced_at_the_cached_rate(setup: dict, stream: bool) -> None:
    make_model("gpt-4o*", (setup["account"], ""))
    setup["upstream"].cached_tokens = 3
    row = chat(setup, "gpt-4o-2024-11-20", stream=stream)
    assert row.prompt_tokens > 3
    assert row.cost == priced(row, "2.50", "10.00", "1.25", cached=3) < priced(row, "2.50", "10.00")


def test_usage_estimated_when_none_is_reported_is_priced_and_marked(setup: dict, admin_client: Client) -> None:
    make_model("gpt-4o*", (setup["account"], ""))
    setup["upstream"].without_usage = True
    row = chat(setup, "gpt-4o-2024-08-06")
    assert row.usage_estimated and row.prompt_tokens > 0 and row.completion_tokens > 0
    assert row.cost == priced(row, "2.50", "10.00") > 0
    page = admin_client.get(reverse("admin:gateway_requestlog_changelist")).content.decode()
    assert f"≈${row.cost.normalize():f} (estimated usage)" in page


def test_a_model_without_any_price_is_logged_and_shown_as_unknown_not_free(setup: dict, admin_client: Client) -> None:
    make_model("house-llm", (setup["account"], "llama3"))  # the entry sets no price; the list has none
    row = chat(setup, "house-llm")
    assert row.prompt_tokens > 0 and row.cost is None
    listing = admin_client.get(reverse("admin:gateway_requestlog_changelist"))
    assert '<td class="field-cost_usd">unknown</td>' in listing.content.decode()
    unknown_only = admin_client.get(reverse("admin:gateway_requestlog_changelist"), {"cost": "unknown"})
    assert list(unknown_only.context["cl"].result_list) == [row]
    models = admin_client.get(reverse("admin:gateway_modelentry_changelist")).content.decode()
    assert '<td class="field-prices">unknown</td>' in models


def test_the_model_list_shows_where_prices_come_from(setup: dict, admin_client: Client) -> None:
    account = setup["account"]
    make_model("gpt-4o*", (account, ""))
    make_model("gpt-4.1", (account, "gpt-4.1"))
    make_model("house", (account, "gpt-4o"), input_price_per_million="1")  # output and cached: the list's
    make_model("own", (account, "llama3"), input_price_per_million="1", output_price_per_million="2")
    make_model("house-llm", (account, "llama3"))
    make_model("embed", (account, "text-embedding-3-small"), embeddings=True)
    url = reverse("admin:gateway_modelentry_changelist")
    page = admin_client.get(url).content.decode()
    assert '<td class="field-input_price">2 (list)</td>' in page  # gpt-4.1
    assert '<td class="field-cached_input_price">1.25 (list)</td>' in page  # house: gpt-4o's cached price
    assert "price list 2026-12-01, per requested model" in page  # gpt-4o*
    states = {state: sorted(m.name for m in admin_client.get(url, {"prices": state}).context["cl"].result_list)
              for state in ("entry", "price_list", "mixed", "unknown")}
    assert states == {"entry": ["own"], "price_list": ["embed", "gpt-4.1", "gpt-4o*"], "mixed": ["house"],
                      "unknown": ["house-llm"]}
    house = admin_client.get(reverse("admin:gateway_modelentry_change", args=[
        make_model("pair", (account, "gpt-4o"), (account, "o3")).pk])).content.decode()
    assert "openai-main: gpt-4o: input 2.5 (price list)" in house and "openai-main: o3: input 2 (price list)" in house
