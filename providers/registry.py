"""The explicit registry of provider kinds: a kind string names exactly one adapter class."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from providers.anthropic.adapter import AnthropicAdapter
from providers.base import Account, Adapter, OptionSpec
from providers.cloudflare.adapter import CloudflareAdapter
from providers.gemini.adapter import GeminiAdapter
from providers.openai import OpenAIAdapter, OpenAICompatibleAdapter

ADAPTERS: dict[str, type[Adapter]] = {cls.kind: cls for cls in (OpenAIAdapter, OpenAICompatibleAdapter, CloudflareAdapter, AnthropicAdapter,
                                                                   GeminiAdapter)}


class UnknownKind(LookupError):
    pass


def adapter_class(kind: str) -> type[Adapter]:
    try:
        return ADAPTERS[kind]
    except KeyError:
        raise UnknownKind(f"Unknown provider kind {kind!r}; known kinds: {', '.join(sorted(ADAPTERS))}") from None


def adapter_for(account: Account) -> Adapter:
    return adapter_class(account.kind)(account)


def kind_choices() -> list[tuple[str, str]]:
    return [(kind, cls.label) for kind, cls in ADAPTERS.items()]


def default_base_url(kind: str) -> str:
    return adapter_class(kind).default_base_url


def option_specs(kind: str) -> tuple[OptionSpec, ...]:
    """The account options ``kind`` declares (``Adapter.option_specs``); none for an unknown kind."""
    cls = ADAPTERS.get(kind)
    return cls.option_specs if cls is not None else ()


def missing_options(kind: str, options: Mapping[str, Any]) -> list[OptionSpec]:
    """The required options of ``kind`` that ``options`` lack."""
    return [spec for spec in option_specs(kind) if spec.required and spec.is_missing(options)]
