"""What a request costs: its registry entry's prices, else the price list's for the upstream model.

The price list (``prices.yaml`` beside this module: its header says where the numbers come from
and how an id is matched) is read once per process. Each of the three prices (input, cached
input, output; USD per million tokens) is taken on its own: the entry's when set there, else the
list's for the upstream model id that served the request, else unknown. Cached input tokens with
no cached price anywhere are priced at the input price. A request whose tokens need a price
nobody knows has an unknown cost (None), never 0; tokens that were not used need no price.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from providers.base import Usage

LIST_FILE = Path(__file__).with_name("prices.yaml")
MILLION = Decimal(1_000_000)
COST_PLACES = Decimal("0.00000001")  # RequestLog.cost keeps 8 decimal places
KINDS = ("input", "cached_input", "output")
ROW_KEYS = {*KINDS, "aliases"}
# What the lookup rule removes from an id that is not listed: a trailing date or -latest.
_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|latest)$")

# Where an effective price comes from.
ENTRY = "entry"  # set on the registry entry
LISTED = "price_list"  # the price list's, for the upstream model
PER_MODEL = "price_list_per_model"  # a pattern passing the requested name through: the list's, per name
INPUT = "input_price"  # no cached price anywhere: cached tokens cost the input price
UNKNOWN = "unknown"


class PriceListError(ValueError):
    """The price list file is malformed; the message says where."""


@dataclass(frozen=True)
class Rates:
    """One model's published prices (None: not published)."""

    input: Decimal | None = None
    cached_input: Decimal | None = None
    output: Decimal | None = None


@dataclass(frozen=True)
class PriceList:
    date: str
    rates: dict[str, Rates]  # by lower-cased id, aliases included

    def lookup(self, model: str) -> Rates | None:
        """The prices of an upstream model id: listed (or an alias), else after the suffix rule."""
        key = model.strip().lower().removeprefix("models/")
        found = self.rates.get(key)
        if found is None and (base := _SUFFIX.sub("", key)) != key:
            found = self.rates.get(base)
        return found


def _price(value: Any, where: str) -> Decimal:
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        price = Decimal(-1)
    if isinstance(value, bool) or not price.is_finite() or price < 0:
        raise PriceListError(f"{where}: must be a number >= 0")
    return price


def parse(document: Any) -> PriceList:
    """A price list from the parsed YAML document; PriceListError names the first problem."""
    if not isinstance(document, dict) or not isinstance(document.get("models"), dict) or not document.get("date"):
        raise PriceListError("the price list needs a `date` and a `models` mapping")
    if set(document) - {"date", "currency", "models"} or document.get("currency", "USD") != "USD":
        raise PriceListError("top level: only `date`, `currency` (USD) and `models`")
    rates: dict[str, Rates] = {}
    for model, row in document["models"].items():
        where = f"models.{model}"
        if not isinstance(row, dict) or not set(row) <= ROW_KEYS or not set(row) & set(KINDS):
            raise PriceListError(f"{where}: a mapping of {', '.join(KINDS)} (and aliases)")
        aliases = row.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise PriceListError(f"{where}.aliases: must be a list of model ids")
        entry = Rates(**{k: _price(row[k], f"{where}.{k}") for k in KINDS if row.get(k) is not None})
        for name in [str(model), *aliases]:
            if name.lower() in rates:
                raise PriceListError(f"{where}: {name!r} is listed twice")
            rates[name.lower()] = entry
    return PriceList(str(document["date"]), rates)


def load(path: Path = LIST_FILE) -> PriceList:
    try:
        return parse(yaml.safe_load(path.read_text(encoding="utf-8")))
    except PriceListError as exc:
        raise PriceListError(f"{path.name}: {exc}") from None


@cache
def price_list() -> PriceList:
    """This process's price list, read on first use."""
    return load()


@dataclass(frozen=True)
class Pricing:
    """The prices one request is charged at, and where each comes from (ENTRY, LISTED, ...)."""

    input: Decimal | None
    cached_input: Decimal | None
    output: Decimal | None
    sources: tuple[str, str, str]  # for input, cached_input, output

    def cost(self, usage: Usage | None) -> Decimal | None:
        """USD for this usage; None when tokens were used whose price is unknown."""
        if usage is None:
            return Decimal(0)
        cached = min(max(usage.cached_tokens, 0), usage.prompt_tokens)
        total = Decimal(0)
        for tokens, rate in ((usage.prompt_tokens - cached, self.input), (cached, self.cached_input),
                             (usage.completion_tokens, self.output)):
            if tokens <= 0:
                continue
            if rate is None:
                return None
            total += rate * tokens
        return (total / MILLION).quantize(COST_PLACES, ROUND_HALF_UP)

    @property
    def values(self) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
        return self.input, self.cached_input, self.output

    def as_dict(self) -> dict[str, Any]:
        """The prices and their sources as /v1/model-options and /v1/route-check show them."""
        shown: dict[str, Any] = {f"{kind}_per_million": float(value) if value is not None else None
                                 for kind, value in zip(KINDS, self.values, strict=True)}
        shown["currency"] = "USD"
        shown["sources"] = dict(zip(KINDS, self.sources, strict=True))
        if LISTED in self.sources or PER_MODEL in self.sources:
            shown["price_list_date"] = price_list().date
        return shown

    def state(self, needs_output: bool = True) -> str:
        """ENTRY, LISTED (per requested model included), "mixed" or UNKNOWN: where the prices a request
        needs come from (an embedding model's needs no output price)."""
        needed = (self.sources[0], self.sources[2]) if needs_output else (self.sources[0],)
        used = {LISTED if s == PER_MODEL else s for s in needed}
        if UNKNOWN in used:
            return UNKNOWN
        return used.pop() if len(used) == 1 else "mixed"

    def describe(self) -> str:
        """Each price and its source, e.g. "input 2.5 (price list), cached input 2.5 (input price), ..."."""
        parts = []
        for kind, value, source in zip(KINDS, self.values, self.sources, strict=True):
            shown = "per requested model" if source == PER_MODEL else "unknown" if value is None else (
                f"{value.normalize():f} ({source.replace('_', ' ')})")
            parts.append(f"{kind.replace('_', ' ')} {shown}")
        return ", ".join(parts)

    def summary(self, needs_output: bool = True) -> str:
        """The state in a few words, for the admin's model list."""
        per_model = ", per requested model" if PER_MODEL in self.sources else ""
        return {ENTRY: "set here", LISTED: f"price list {price_list().date}{per_model}",
                "mixed": f"set here + price list {price_list().date}{per_model}",
                UNKNOWN: "unknown"}[self.state(needs_output)]


def pricing(input_price: Decimal | None, cached_input_price: Decimal | None, output_price: Decimal | None,
            upstream_model: str | None) -> Pricing:
    """The effective prices of a registry entry's prices served by ``upstream_model``
    (None: a pattern passing the requested name through, whose list prices depend on that name)."""
    listed = price_list().lookup(upstream_model) if upstream_model else None
    values: list[Decimal | None] = []
    sources: list[str] = []
    for own, kind in zip((input_price, cached_input_price, output_price), KINDS, strict=True):
        from_list = getattr(listed, kind) if listed is not None else None
        if own is not None:
            values.append(own)
            sources.append(ENTRY)
        elif from_list is not None:
            values.append(from_list)
            sources.append(LISTED)
        else:
            values.append(None)
            sources.append(PER_MODEL if upstream_model is None else UNKNOWN)
    if values[1] is None and values[0] is not None and upstream_model is not None:
        values[1], sources[1] = values[0], INPUT
    return Pricing(values[0], values[1], values[2], (sources[0], sources[1], sources[2]))
