"""Limits per token and per team: requests and tokens per minute, requests in flight, a budget; and a
token's (in practice the anonymous identity's) requests and tokens per minute and requests in flight per
client address.

The model: a request needs an amount of several counters at once — one request of each rpm
window, its reserved tokens of each tpm window, one slot of each parallel limit, its worst-case
cost of each budget — for its token and for its token's team (a team's counters are shared by
all its tokens). ``Store.take`` (gateway/access/stores.py) checks and takes all of them or none,
in one atomic step; after the answer, ``settle`` corrects the tokens and the cost to the real
usage and frees the slots. The windows are in gateway/access/windows.py; the policy class the
inference views list is ``gateway.access.policy.TokenLimits``.

What is reserved: the prompt estimate (``prompt_estimate``: a quick count from the body's text,
above the real count for ordinary text) plus the most output the request may produce
(``max_completion_tokens`` / ``max_tokens``, else the model's *max output tokens*, else
``GATEWAY_LIMITS_DEFAULT_MAX_OUTPUT_TOKENS``; times ``n``), and that many tokens at the entry's
prices as its cost. Costs count in integer units of 1e-8 USD (the request log's precision).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import cached_property
from typing import Any

from gateway.access import windows
from gateway.conf import gateway_settings
from gateway.errors import GatewayError
from gateway.routing.registry import Entry
from gateway.usage.tokenizer import IMAGE_TOKENS_DEFAULT, IMAGE_TOKENS_LOW

UNITS_PER_USD = 100_000_000
BUDGET, RPM, TPM, PARALLEL = "budget", "rpm", "tpm", "parallel"
# A window's counter outlives the window a little: a request settles into the window it started in.
WINDOW_MARGIN = 60.0
PERIOD_MARGIN = 86_400.0
NON_TEXT_PARTS = frozenset({"image_url", "input_audio", "file", "image"})


@dataclass(frozen=True)
class Limits:
    """One holder's limits: a token's, a team's, the anonymous identity's (an ApiToken row too), or those
    of one client address under a token (``address`` set: its counters are that address's alone).
    None = no limit."""

    owner: str  # "token" | "team" | "anonymous"
    id: int
    name: str
    rpm: int | None = None
    tpm: int | None = None
    parallel: int | None = None
    budget: Decimal | None = None
    budget_period: str = "total"
    address: str = ""  # the client address (gateway/access/addresses.py) these limits count for

    @classmethod
    def of(cls, owner: str, row: Any) -> Limits | None:
        """The limits of a Team or ApiToken row; None when it has none."""
        if row is None or not row.has_limits():
            return None
        budget = None if row.budget is None else Decimal(row.budget)
        return cls(owner, row.id, row.name, row.rpm, row.tpm, row.parallel, budget, row.budget_period)

    @classmethod
    def per_address(cls, owner: str, row: Any) -> Limits | None:
        """An ApiToken row's limits per client address (no budget: the log does not keep addresses to
        count one from); None when it has none. ``at`` gives them one address."""
        values = (row.rpm_per_ip, row.tpm_per_ip, row.parallel_per_ip)
        if all(value is None for value in values):
            return None
        return cls(owner, row.id, row.name, *values)

    def at(self, address: str) -> Limits:
        return replace(self, address=address)

    @cached_property
    def scope(self) -> str:
        base = f"{'team' if self.owner == 'team' else 'tok'}:{self.id}"
        return f"{base}:ip:{self.address}" if self.address else base

    @property
    def column(self) -> str:
        """The request log's column that holds the holder's id (budgets are seeded from its spend)."""
        return "team_id" if self.owner == "team" else "token_id"

    @cached_property
    def base_key(self) -> str:
        """The prefix of this holder's counter keys in the stores."""
        return f"gw:lim:{self.scope}"

    @cached_property
    def budget_units(self) -> int:
        return 0 if self.budget is None else units(self.budget)

    @property
    def who(self) -> str:
        holder = "anonymous access" if self.owner == "anonymous" else f"{self.owner} '{self.name}'"
        return f"{holder} from {self.address} (a limit per client address)" if self.address else holder


@dataclass(frozen=True)
class Need:
    """What one request takes: requests, estimated prompt + reserved output tokens, worst-case cost, a slot."""

    requests: int = 1
    prompt: int = 0
    output: int = 0
    cost: int = 0  # 1e-8 USD
    slot: bool = True

    @property
    def tokens(self) -> int:
        return self.prompt + self.output


@dataclass(slots=True)  # not frozen: a request builds several, and frozen dataclasses are slow to build
class Counter:
    """One counter a request takes from: its store key, limit, the amount to take and its window."""

    key: str
    kind: str  # BUDGET | RPM | TPM | PARALLEL
    limit: int
    amount: int
    limits: Limits
    resets_at: float | None  # the window's end; None: never (a total budget) or when a slot frees
    expires_at: float | None  # when the store may forget it; None: never. Slots: the lease's end
    since: float | None = None  # budgets: the period's start (None: all time), to seed from the request log

    @property
    def slot(self) -> bool:
        return self.kind == PARALLEL


@dataclass(frozen=True)
class Outcome:
    """A store's answer to a check-and-take: every counter's value before it, and the first that did not fit."""

    ok: bool
    values: list[int]
    refused: int | None = None


Adjustments = Sequence[tuple[Counter, int]]  # (counter, delta); a slot counter's entry frees the slot


class Store:
    """Where counters live (gateway/access/stores.py picks one). Each step is atomic: ``take`` checks
    every counter a request needs and takes all or none; ``settle_many`` adds the corrections of
    several requests and frees their slots; ``renew`` extends slots still held; ``peek`` reads
    counts for headers. ``take_sync`` serves DRF views, which run in a thread."""

    async def take(self, counters: Sequence[Counter], holder: str, now: float) -> Outcome:
        raise NotImplementedError

    def take_sync(self, counters: Sequence[Counter], holder: str, now: float) -> Outcome:
        raise NotImplementedError

    async def settle_many(self, batch: Sequence[tuple[Adjustments, str]]) -> None:
        """For each (adjustments, holder): add each delta — never below 0, never to a counter that has
        gone — and free the holder's slots."""
        raise NotImplementedError

    async def settle(self, adjustments: Adjustments, holder: str) -> None:
        await self.settle_many([(adjustments, holder)])

    async def renew(self, slots: Sequence[tuple[str, str]], until: float) -> None:
        """Extend the (key, holder) slots still held to ``until``."""
        raise NotImplementedError

    async def peek(self, counters: Sequence[Counter], now: float) -> list[int]:
        raise NotImplementedError


def units(usd: Decimal) -> int:
    """USD as whole 1e-8 USD units, rounded up."""
    return math.ceil(usd * UNITS_PER_USD)


def usd(amount: int) -> str:
    return "$" + format((Decimal(amount) / UNITS_PER_USD).normalize(), "f")


def counters(held: Iterable[Limits], need: Need, now: float, lease: float,
             kinds: Sequence[str] = (BUDGET, RPM, TPM, PARALLEL)) -> list[Counter]:
    """The counters of every limit held that this request takes from, budgets first (their refusal is
    the one that says most: retrying soon will not help)."""
    number, minute_end = windows.minute(now)
    found: dict[str, list[Counter]] = {kind: [] for kind in kinds}
    for limits in held:
        base = limits.base_key
        if BUDGET in found and limits.budget is not None:
            label, start, end = windows.period(limits.budget_period, now)
            found[BUDGET].append(Counter(
                f"{base}:budget:{limits.budget_period}:{label}", BUDGET, limits.budget_units, need.cost, limits,
                end, None if end is None else end + PERIOD_MARGIN, start))
        if RPM in found and limits.rpm is not None:
            found[RPM].append(Counter(f"{base}:rpm:{number}", RPM, limits.rpm, need.requests, limits,
                                      minute_end, minute_end + WINDOW_MARGIN))
        if TPM in found and limits.tpm is not None:
            found[TPM].append(Counter(f"{base}:tpm:{number}", TPM, limits.tpm, need.tokens, limits,
                                      minute_end, minute_end + WINDOW_MARGIN))
        if PARALLEL in found and limits.parallel is not None and need.slot:
            found[PARALLEL].append(Counter(f"{base}:parallel", PARALLEL, limits.parallel, 1, limits,
                                           None, now + lease))
    return [counter for kind in kinds for counter in found[kind]]


# -- what a request reserves -------------------------------------------------------------------------


def prompt_estimate(body: dict[str, Any]) -> int:
    """A quick estimate of the prompt's tokens, without a tokenizer: every string in the body counts its
    UTF-8 bytes / 3 plus one (ordinary text has 4 or more bytes per token, so this is above the real
    count and covers the per-message overhead), every number 1 (token-id prompts), an image, audio or
    file part 765 tokens (85 for an image at ``detail: low``)."""
    total = 0
    stack: list[Any] = [body]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            total += (len(value) if value.isascii() else len(value.encode())) // 3 + 1
        elif isinstance(value, dict):
            if value.get("type") in NON_TEXT_PARTS:
                image = value.get("image_url")
                low = isinstance(image, dict) and image.get("detail") == "low"
                total += IMAGE_TOKENS_LOW if low else IMAGE_TOKENS_DEFAULT
            else:
                stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            total += 1
    return total


def max_output(body: dict[str, Any], entry: Entry, generates: bool = True) -> int:
    """The most output tokens the request may produce (0 for embeddings)."""
    if not generates:
        return 0
    asked = next((body[name] for name in ("max_completion_tokens", "max_tokens", "max_output_tokens")
                  if isinstance(body.get(name), int) and not isinstance(body[name], bool) and body[name] > 0), None)
    most = asked or entry.max_output_tokens or gateway_settings.LIMITS_DEFAULT_MAX_OUTPUT_TOKENS
    choices = body.get("n")
    if isinstance(choices, int) and not isinstance(choices, bool) and choices > 1:
        most *= choices
    return int(most)


def worst_prices(entry: Entry, upstream_models: Sequence[str]) -> tuple[Decimal, Decimal] | None:
    """The highest input and output prices any deployment that may answer would charge (each from the
    entry, else the price list); None when one of them is unknown."""
    found = [entry.pricing(model) for model in upstream_models] or [entry.pricing(None)]
    if any(pricing.input is None or pricing.output is None for pricing in found):
        return None
    return max(p.input for p in found if p.input is not None), max(p.output for p in found if p.output is not None)


def worst_cost(rates: tuple[Decimal, Decimal], prompt: int, output: int) -> int:
    """The cost of ``prompt`` + ``output`` tokens at these prices per million, in 1e-8 USD, rounded up."""
    cost = rates[0] * prompt + rates[1] * output
    return math.ceil(cost * UNITS_PER_USD / 1_000_000)


def need(held: Sequence[Limits], body: dict[str, Any], entry: Entry, generates: bool = True,
         upstream_models: Sequence[str] = ()) -> Need:
    """What this request takes; the prompt is estimated only when a tpm limit or a budget applies.

    The cost reserved is at the highest prices of the deployments that may answer (the entry's, else
    the price list's). A model whose price is unknown under a budget is refused (403
    ``model_not_priced``): its cost could not be counted, so the budget could not hold. With
    ``GATEWAY_BUDGET_ALLOWS_UNPRICED_MODELS`` it is allowed and costs 0.
    """
    budgets = [limits for limits in held if limits.budget is not None]
    if not budgets and all(limits.tpm is None for limits in held):
        return Need()
    rates = worst_prices(entry, upstream_models)
    if budgets and rates is None and not gateway_settings.BUDGET_ALLOWS_UNPRICED_MODELS:
        raise GatewayError(
            403, f"The model `{entry.name}` has no known price (neither its registry entry nor the price list), so its cost cannot be "
            f"counted against the budget of {budgets[0].who}. An administrator must set the model's prices.",
            "permission_error", "model_not_priced", "model")
    prompt, output = prompt_estimate(body), max_output(body, entry, generates)
    return Need(1, prompt, output, worst_cost(rates, prompt, output) if budgets and rates is not None else 0)


# -- what the client is told -------------------------------------------------------------------------


class LimitExceeded(GatewayError):
    """A request a limit refused: 429, before any upstream call."""

    limit = ""  # which: BUDGET, RPM, TPM or PARALLEL (the metrics count refusals by it)


def rate_headers(found: Sequence[Counter], outcome: Outcome, now: float) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers: the requests trio when an rpm limit applies, the tokens trio
    when a tpm limit does; where token and team both have one, the one with less left."""
    headers: dict[str, str] = {}
    for kind, name in ((RPM, "requests"), (TPM, "tokens")):
        left = []
        for counter, value in zip(found, outcome.values, strict=True):
            if counter.kind == kind:
                used = value + (counter.amount if outcome.ok else 0)
                left.append((max(0, counter.limit - used), counter))
        if left:
            remaining, counter = min(left, key=lambda pair: pair[0])
            headers[f"x-ratelimit-limit-{name}"] = str(counter.limit)
            headers[f"x-ratelimit-remaining-{name}"] = str(remaining)
            headers[f"x-ratelimit-reset-{name}"] = windows.duration((counter.resets_at or now) - now)
    return headers


def refusal(counter: Counter, value: int, need: Need, now: float, headers: dict[str, str]) -> LimitExceeded:
    """The 429 for the counter that did not fit: which limit, whose, its value, and when it resets."""
    who, limit = counter.limits.who, counter.limit
    headers = dict(headers)
    resets = "" if counter.resets_at is None else f" It resets in {windows.duration(counter.resets_at - now)}."
    retry = None if counter.resets_at is None else windows.retry_after(counter.resets_at - now)
    needs = f"up to {need.tokens} tokens (prompt estimate {need.prompt} + {need.output} max output tokens)"
    if counter.kind == BUDGET:
        period = counter.limits.budget_period
        if counter.resets_at is None:
            resets = " It is a total budget: it does not reset, an administrator can raise it."
            headers["x-should-retry"] = "false"
        else:
            resets = f" It resets at {windows.when(counter.resets_at)} (in {windows.duration(counter.resets_at - now)})."
        message = (f"Budget exhausted: {who} has a {period} budget of {usd(limit)}; {usd(value)} is spent or "
                   f"reserved and this request may cost up to {usd(counter.amount)}.{resets}")
        refused = LimitExceeded(429, message, "insufficient_quota", "insufficient_quota", retry_after=retry,
                                headers=headers)
        refused.limit = counter.kind
        return refused
    if counter.kind == PARALLEL:
        message = (f"Rate limit reached for parallel requests: {who} allows {limit} requests in flight at "
                   f"once and {value} are running. Retry when one of them has finished.")
        retry = "1"
    elif counter.kind == RPM:
        message = (f"Rate limit reached for requests per minute (rpm): {who} allows {limit} requests per "
                   f"minute and has made {value} in this minute.{resets}")
    elif counter.amount > limit:
        message = (f"Request too large for the tokens per minute (tpm) limit of {who}, {limit} tokens per "
                   f"minute: this request needs {needs}. Lower max_tokens (or max_completion_tokens) or "
                   "shorten the prompt.")
        headers["x-should-retry"] = "false"
    else:
        message = (f"Rate limit reached for tokens per minute (tpm): {who} allows {limit} tokens per minute; "
                   f"{value} are used or reserved in this minute and this request needs {needs}.{resets}")
    refused = LimitExceeded(429, message, "rate_limit_error", "rate_limit_exceeded", retry_after=retry,
                            headers=headers)
    refused.limit = counter.kind
    return refused
