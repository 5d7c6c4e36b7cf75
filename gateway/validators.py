"""What a registry row's fields may hold: base URLs, model names, fallback lists, a provider account's
options (used by the models, their migrations, the admin and the config file)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

from providers.registry import missing_options, option_specs

REQUIRED_OPTION = "required_option"  # the code of the error for a missing required option


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


def option_errors(kind: str, options: Any) -> list[ValidationError]:
    """What is wrong with a provider account's options for its kind: a required option missing (code
    ``REQUIRED_OPTION``), a declared one of the wrong type; ``params["option"]`` names the option."""
    if not isinstance(options, dict):
        return [ValidationError("must be a mapping of option names to values")]
    errors = [ValidationError("%(label)s (%(option)s) is required for this kind: %(help)s", code=REQUIRED_OPTION,
                              params={"label": spec.label, "option": spec.name, "help": spec.help})
              for spec in missing_options(kind, options)]
    for spec in option_specs(kind):
        problem = spec.problem(options.get(spec.name))
        if problem is not None:
            errors.append(ValidationError("%(problem)s", code="invalid_option",
                                          params={"option": spec.name, "problem": problem}))
    return errors
