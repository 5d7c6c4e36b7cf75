"""The explicit registry of provider kinds: a kind string names exactly one adapter class."""

from __future__ import annotations

from providers.anthropic.adapter import AnthropicAdapter
from providers.base import Account, Adapter
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
