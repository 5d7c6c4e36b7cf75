"""The limits model: windows, what a request reserves, its counters, the headers and the refusals."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from gateway.access import limits, windows
from gateway.access.limits import BUDGET, PARALLEL, RPM, TPM, Limits, Need, Outcome
from gateway.errors import GatewayError, render
from gateway.routing.registry import Entry


def entry(max_output: int | None = 1000, input_price: str | None = "1", output_price: str | None = "2",
          name: str = "m") -> Entry:
    """An entry with these prices (None: not set; the price list then decides for the upstream model)."""
    return Entry(1, name, 8000, max_output, None if input_price is None else Decimal(input_price),
                 None if output_price is None else Decimal(output_price), False, 0, ())


def at(text: str, zone: str = "UTC") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def test_rpm_and_tpm_windows_are_calendar_minutes() -> None:
    number, end = windows.minute(at("2026-03-04 10:20:30.5"))
    assert end == at("2026-03-04 10:21:00") and windows.minute(at("2026-03-04 10:20:00"))[0] == number


@pytest.mark.parametrize(("period", "now", "start", "end"), [
    ("daily", "2026-03-04 23:59:59", "2026-03-04 00:00", "2026-03-05 00:00"),
    ("weekly", "2026-03-04 10:00", "2026-03-02 00:00", "2026-03-09 00:00"),  # a Wednesday; weeks start Monday
    ("monthly", "2026-12-31 10:00", "2026-12-01 00:00", "2027-01-01 00:00"),
    ("monthly", "2026-02-01 00:00", "2026-02-01 00:00", "2026-03-01 00:00"),
])
def test_budget_periods_start_at_midnight_in_the_time_zone(settings, period: str, now: str, start: str, end: str) -> None:
    settings.TIME_ZONE = "Europe/Berlin"
    label, begins, ends = windows.period(period, at(now, "Europe/Berlin"))
    assert (begins, ends) == (at(start, "Europe/Berlin"), at(end, "Europe/Berlin"))
    assert label == start[:10]
    assert windows.period("total", at(now)) == ("total", None, None)


@pytest.mark.parametrize(("seconds", "shown"), [(0.35, "350ms"), (1, "1s"), (59.2, "1m0s"), (360, "6m0s"),
                                                (3 * 3600 + 5, "3h0m5s"), (-1, "0ms")])
def test_resets_are_written_as_openai_writes_them(seconds: float, shown: str) -> None:
    assert windows.duration(seconds) == shown


def test_the_prompt_estimate_is_above_a_real_count_and_ignores_image_bytes() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 20  # 180 words, about 200 tokens
    body = {"model": "m", "messages": [{"role": "user", "content": text}]}
    assert 200 < limits.prompt_estimate(body) < 400
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 100_000}}
    with_image = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, image]}]}
    assert 765 < limits.prompt_estimate(with_image) < 800
    assert limits.prompt_estimate({"prompt": [1, 2, 3, 4]}) == 4  # token ids
    assert limits.prompt_estimate({"input": "日本語"}) == 9 // 3 + 1  # UTF-8 bytes


def test_output_reserved_is_the_requests_max_else_the_models_else_the_default(settings) -> None:
    assert limits.max_output({"max_tokens": 50}, entry()) == 50
    assert limits.max_output({"max_completion_tokens": 70, "max_tokens": 50}, entry()) == 70
    assert limits.max_output({}, entry()) == 1000
    assert limits.max_output({}, entry(max_output=None)) == 4096
    settings.GATEWAY = {"LIMITS_DEFAULT_MAX_OUTPUT_TOKENS": 512}
    assert limits.max_output({"n": 3}, entry(max_output=None)) == 3 * 512
    assert limits.max_output({"max_tokens": 50}, entry(), generates=False) == 0


def test_the_worst_case_cost_is_counted_in_hundred_millionths_of_a_dollar() -> None:
    # 1000 prompt tokens at $1/M + 500 output tokens at $2/M = $0.002
    assert limits.worst_cost(limits.worst_prices(entry(), ()), 1000, 500) == 200_000


def test_the_reservation_is_at_the_dearest_deployment_that_may_answer() -> None:
    # An entry without prices of its own, served by two upstream models the price list prices differently.
    rates = limits.worst_prices(entry(input_price=None, output_price=None), ["gpt-4o-mini", "gpt-4o"])
    mini, full = (entry(input_price=None, output_price=None).pricing(m) for m in ("gpt-4o-mini", "gpt-4o"))
    assert rates == (max(mini.input, full.input), max(mini.output, full.output)) == (full.input, full.output)
    assert limits.worst_prices(entry(input_price=None, output_price=None), ["gpt-4o", "nobody-prices-this"]) is None
    assert limits.units(Decimal("0.000000001")) == 1  # rounded up


def test_an_unpriced_model_under_a_budget_is_refused_but_free_elsewhere(settings) -> None:
    budget = (Limits("token", 1, "t", budget=Decimal(1)),)
    with pytest.raises(GatewayError) as info:
        limits.need(budget, {"messages": []}, entry(input_price=None, output_price=None), ["nobody-prices-this"])
    assert info.value.status == 403 and info.value.code == "model_not_priced" and "token 't'" in info.value.message
    assert limits.need((Limits("token", 1, "t", rpm=5),), {}, entry(input_price=None, output_price=None)) == Need()
    settings.GATEWAY = {"BUDGET_ALLOWS_UNPRICED_MODELS": True}
    assert limits.need(budget, {"max_tokens": 5}, entry(input_price=None, output_price=None),
                       ["nobody-prices-this"]).cost == 0


def test_counters_cover_token_and_team_budgets_first() -> None:
    held = (Limits("token", 7, "ci", rpm=10, tpm=1000, parallel=2),
            Limits("team", 3, "platform", rpm=100, budget=Decimal("5"), budget_period="monthly"))
    need = Need(1, 100, 200, 3000)
    now = at("2026-03-04 10:20:30")
    found = limits.counters(held, need, now, lease=60)
    assert [(c.kind, c.limits.owner) for c in found] == [
        (BUDGET, "team"), (RPM, "token"), (RPM, "team"), (TPM, "token"), (PARALLEL, "token")]
    budget, rpm = found[0], found[1]
    assert budget.key == "gw:lim:team:3:budget:monthly:2026-03-01" and budget.limit == 500_000_000
    assert budget.amount == 3000 and budget.since == at("2026-03-01 00:00")
    assert rpm.key.startswith("gw:lim:tok:7:rpm:") and rpm.resets_at == at("2026-03-04 10:21:00")
    assert found[3].amount == 300 and found[4].expires_at == now + 60


def test_headers_show_the_limit_with_least_left() -> None:
    held = (Limits("token", 7, "ci", rpm=10, tpm=1000), Limits("team", 3, "platform", rpm=100))
    now = at("2026-03-04 10:20:30")
    found = limits.counters(held, Need(1, 10, 90), now, lease=60)
    headers = limits.rate_headers(found, Outcome(True, [3, 99, 200]), now)
    assert headers == {"x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": "0",
                       "x-ratelimit-reset-requests": "30s", "x-ratelimit-limit-tokens": "1000",
                       "x-ratelimit-remaining-tokens": "700", "x-ratelimit-reset-tokens": "30s"}


def test_refusals_name_the_limit_its_holder_its_value_and_the_reset() -> None:
    now = at("2026-03-04 10:20:30")
    token = Limits("token", 7, "ci", rpm=10, tpm=1000, parallel=2, budget=Decimal("0.5"), budget_period="daily")
    need = Need(1, 100, 200, 3000)
    found = {c.kind: c for c in limits.counters((token,), need, now, lease=60)}
    rpm = limits.refusal(found[RPM], 10, need, now, {"x-ratelimit-limit-requests": "10"})
    status, headers, payload = render(rpm)
    assert status == 429 and headers["Retry-After"] == "30" and headers["x-ratelimit-limit-requests"] == "10"
    assert payload["error"]["type"] == "rate_limit_error" and payload["error"]["code"] == "rate_limit_exceeded"
    assert "requests per minute (rpm): token 'ci' allows 10" in payload["error"]["message"]
    assert "resets in 30s" in payload["error"]["message"]
    tpm = limits.refusal(found[TPM], 900, need, now, {}).message
    assert "token 'ci' allows 1000 tokens per minute; 900 are used" in tpm and "needs up to 300 tokens" in tpm
    budget = limits.refusal(found[BUDGET], 49_999_000, need, now, {})
    assert (budget.type, budget.code) == ("insufficient_quota", "insufficient_quota")
    assert "daily budget of $0.5" in budget.message and "2026-03-05 00:00 UTC" in budget.message
    assert budget.retry_after == str(int(at("2026-03-05 00:00") - now))
    parallel = limits.refusal(found[PARALLEL], 2, need, now, {})
    assert parallel.retry_after == "1" and "2 requests in flight" in parallel.message


def test_a_request_larger_than_a_limit_says_so_and_is_not_worth_retrying() -> None:
    now = at("2026-03-04 10:20:30")
    need = Need(1, 100, 5000)
    counter = limits.counters((Limits("team", 1, "p", tpm=1000),), need, now, lease=60)[0]
    refused = limits.refusal(counter, 0, need, now, {})
    assert "Request too large" in refused.message and refused.headers["x-should-retry"] == "false"
    total = limits.counters((Limits("team", 1, "p", budget=Decimal(1)),), Need(cost=5), now, lease=60)[0]
    refused = limits.refusal(total, 100_000_000, need, now, {})
    assert refused.retry_after is None and "does not reset" in refused.message


def test_limits_per_client_address_have_counters_of_their_own_and_say_whose_they_are() -> None:
    row = SimpleNamespace(id=5, name="anonymous", rpm_per_ip=2, tpm_per_ip=500, parallel_per_ip=None)
    per_address = Limits.per_address("anonymous", row)
    assert per_address is not None and per_address.budget is None and per_address.parallel is None
    assert Limits.per_address("token", SimpleNamespace(id=1, name="t", rpm_per_ip=None, tpm_per_ip=None,
                                                       parallel_per_ip=None)) is None
    held = (Limits("anonymous", 5, "anonymous", rpm=100), per_address.at("203.0.113.7"), per_address.at("2001:db8::/64"))
    now = at("2026-03-04 10:20:30")
    found = limits.counters(held, Need(1, 10, 90), now, lease=60)
    keys = [c.key for c in found]
    assert keys[0].startswith("gw:lim:tok:5:rpm:") and keys[1].startswith("gw:lim:tok:5:ip:203.0.113.7:rpm:")
    assert keys[2].startswith("gw:lim:tok:5:ip:2001:db8::/64:rpm:") and len(set(keys)) == len(keys) == 5
    assert held[0].column == held[1].column == "token_id" and Limits("team", 1, "p").column == "team_id"
    tpm = next(c for c in found if c.kind == TPM and c.limits.address == "203.0.113.7")
    message = limits.refusal(tpm, 450, Need(1, 10, 90), now, {}).message
    assert "anonymous access from 203.0.113.7 (a limit per client address) allows 500 tokens per minute" in message
    assert limits.refusal(found[0], 100, Need(), now, {}).message.startswith(
        "Rate limit reached for requests per minute (rpm): anonymous access allows 100")
