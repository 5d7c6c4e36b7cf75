"""What a registry row's fields may hold: base URLs, model names, fallback lists (used by the models,
their migrations, the admin and the config file)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError


def validate_base_url(value: str) -> None:
    """http(s)://host[:port][/path]; unlike URLField, bare hostnames (http://ollama:11434) are fine."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValidationError("Enter a URL such as https://api.example.com/v1 (http or https, no query).")
    try:
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        raise ValidationError("The port is not a number between 0 and 65535.") from None


def validate_model_name(value: str) -> None:
    if not value.strip() or value != value.strip():
        raise ValidationError("A model name cannot be empty or start/end with spaces.")
    if "**" in value:
        raise ValidationError("Use a single * as the wildcard.")


def split_names(text: str) -> list[str]:
    """Names one per line or comma-separated, in order, without blanks or repeats."""
    return list(dict.fromkeys(item.strip() for item in re.split(r"[,\n]", text or "") if item.strip()))


def fallback_problems(name: str, fallbacks: list[str], known: set[str]) -> list[str]:
    """What is wrong with ``fallbacks`` for the model ``name``, given the exact model names that exist."""
    problems = []
    for fallback in fallbacks:
        if fallback == name:
            problems.append(f"{fallback!r} is this model itself.")
        elif "*" in fallback:
            problems.append(f"{fallback!r} is a pattern: a fallback is an exact model name.")
        elif fallback not in known:
            problems.append(f"No model named {fallback!r}.")
    return problems
