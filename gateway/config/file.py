"""Configuration as code: teams (with their limits), providers, models and the anonymous identity's
allow-list and limits from a YAML or JSON file, applied idempotently.

Rows are matched by name: existing ones are updated, new ones created, nothing else is touched
(except a model's deployments, which become exactly the file's list). A field left out keeps its
value; a team's (or the anonymous identity's) limit given as null is removed. Every problem in the file is reported with its
path, and nothing is applied unless the whole file is valid (one transaction).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import orjson
import yaml
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from gateway.access.windows import PERIODS
from gateway.models import (
    ANONYMOUS_DIGEST,
    ANONYMOUS_NAME,
    ApiToken,
    Deployment,
    ModelEntry,
    ProviderAccount,
    Team,
)
from gateway.validators import REQUIRED_OPTION, fallback_problems
from providers.registry import ADAPTERS

TEAM_KEYS = {"name", "description", "rpm", "tpm", "parallel", "budget", "budget_period"}
COUNTS = ("rpm", "tpm", "parallel")
ANONYMOUS_KEYS = {"allowed_models", "active", *COUNTS, "budget", "budget_period", *ApiToken.PER_ADDRESS_FIELDS}
SECTIONS = ("teams", "providers", "models", "anonymous")
COOLDOWN_KEYS = ("cooldown_failures", "cooldown_window_seconds", "cooldown_seconds")
PROVIDER_KEYS = {"name", "kind", "base_url", "api_key", "options", "connect_timeout", "first_byte_timeout",
                 "read_timeout", "active",
                 *COOLDOWN_KEYS}
PRICE_KEYS = ("input_price_per_million", "cached_input_price_per_million", "output_price_per_million")
MODEL_KEYS = {"name", "description", "deployments", "fallbacks", *PRICE_KEYS,
              "context_window", "max_output_tokens", "is_default", "active", *ModelEntry.CAPABILITIES}
DEPLOYMENT_KEYS = {"provider", "model", "weight", "priority", "active"}
# The registry the gateway starts with: the seed's routing (see the file's comments).
DEFAULTS = Path(__file__).parent / "defaults" / "seed.yaml"
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """The file is invalid; ``problems`` lists each one as "path: reason"."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Summary:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was saved incomplete (placeholders)

    def __str__(self) -> str:
        parts = [f"created {len(self.created)}", f"updated {len(self.updated)}"]
        lines = [f"Applied: {', '.join(parts)}."]
        lines += [f"  + {name}" for name in self.created] + [f"  ~ {name}" for name in self.updated]
        if self.notes:
            lines.append("Not configured yet (set in the admin, Provider accounts; requests to them fail until then):")
            lines += [f"  ! {note}" for note in self.notes]
        return "\n".join(lines)


def load(path: Path) -> Any:
    """Parse the file (JSON when it ends in .json, else YAML, which also reads JSON)."""
    text = path.read_text(encoding="utf-8")
    try:
        return orjson.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError([f"{path.name}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}"]) from exc


def expand(value: Any, path: str, problems: list[str], environ: Mapping[str, str]) -> Any:
    """Replace ${VAR} (or ${VAR:-default}) in every string with the environment's value."""
    if isinstance(value, str):
        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            problems.append(f"{path}: environment variable {name} is not set")
            return ""

        return _VARIABLE.sub(substitute, value)
    if isinstance(value, list):
        return [expand(item, f"{path}[{i}]", problems, environ) for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: expand(item, f"{path}.{key}", problems, environ) for key, item in value.items()}
    return value


class _Checker:
    """Collects problems while reading the document."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.notes: list[str] = []  # what was applied incomplete (see ``apply``'s ``placeholders``)

    def items(self, document: dict[str, Any], key: str) -> list[tuple[str, dict[str, Any]]]:
        value = document.get(key, [])
        if not isinstance(value, list):
            self.problems.append(f"{key}: must be a list")
            return []
        found = []
        for i, item in enumerate(value):
            if isinstance(item, dict):
                found.append((f"{key}[{i}]", item))
            else:
                self.problems.append(f"{key}[{i}]: must be a mapping")
        return found

    def keys(self, path: str, item: dict[str, Any], allowed: set[str], required: tuple[str, ...]) -> None:
        for key in sorted(set(item) - allowed):
            self.problems.append(f"{path}.{key}: unknown field (expected one of {', '.join(sorted(allowed))})")
        for key in required:
            if item.get(key) in (None, ""):
                self.problems.append(f"{path}.{key}: required")

    def typed(self, path: str, item: dict[str, Any], key: str, kind: type | tuple[type, ...], label: str) -> None:
        value = item.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool) and kind is not bool):
            self.problems.append(f"{path}.{key}: must be {label}")

    def decimal(self, path: str, item: dict[str, Any], key: str) -> Decimal | None:
        if item.get(key) is None:
            return None
        try:
            value = Decimal(str(item[key]))
        except InvalidOperation:
            value = Decimal(-1)
        if isinstance(item[key], bool) or not value.is_finite() or value < 0:
            self.problems.append(f"{path}.{key}: must be a number >= 0")
            return None
        return value

    def model_errors(self, path: str, instance: Any, exclude: list[str], tolerate: tuple[str, ...] = ()) -> None:
        """The row's own checks (``full_clean``) as problems; an error about one option (a provider
        account's) is reported at ``path.options.<option>``. Errors whose code is in ``tolerate``
        become notes instead (the account is saved, and the summary says what it lacks)."""
        try:
            instance.full_clean(exclude=exclude, validate_unique=False)
        except ValidationError as exc:
            for name, errors in exc.error_dict.items():
                for error in errors:
                    option = (error.params or {}).get("option")
                    where = f"{path}.{name}.{option}" if option else f"{path}.{name}"
                    if error.code in tolerate:  # (printed at a first start: say which row it is)
                        self.notes.append(f"{instance._meta.verbose_name} {getattr(instance, 'name', '')!r} "
                                          f"({where}): {' '.join(error.messages)}")
                    else:
                        self.problems.append(f"{where}: {' '.join(error.messages)}")


def _limits(check: _Checker, path: str, item: dict[str, Any], row: Team | ApiToken, counts: tuple[str, ...]) -> None:
    """Set the limits the item gives (null: no limit) on a team's or the anonymous identity's row."""
    for key in counts:
        value = item.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            check.problems.append(f"{path}.{key}: must be a whole number >= 0, or null for no limit")
        elif key in item:
            setattr(row, key, value)
    if "budget" in item:
        row.budget = check.decimal(path, item, "budget")
    period = item.get("budget_period")
    if period is not None and period not in PERIODS:
        check.problems.append(f"{path}.budget_period: must be one of {', '.join(PERIODS)}")
    elif period is not None:
        row.budget_period = period


def _team(check: _Checker, path: str, item: dict[str, Any]) -> Team:
    check.keys(path, item, TEAM_KEYS, ("name",))
    for key in ("name", "description"):
        check.typed(path, item, key, str, "a string")
    team = Team.objects.filter(name=item.get("name")).first() or Team(name=item.get("name"))
    if isinstance(item.get("description"), str):
        team.description = item["description"]
    _limits(check, path, item, team, COUNTS)
    check.model_errors(path, team, exclude=[])
    return team


def _anonymous(check: _Checker, item: Any) -> ApiToken | None:
    """The anonymous identity's row (GATEWAY_ANONYMOUS) with the section's allow-list and limits."""
    path = "anonymous"
    if item is None:  # (an empty `anonymous:` section)
        item = {}
    if not isinstance(item, dict):
        check.problems.append(f"{path}: must be a mapping")
        return None
    check.keys(path, item, ANONYMOUS_KEYS, ())
    check.typed(path, item, "active", bool, "true or false")
    row = (ApiToken.objects.filter(digest=ANONYMOUS_DIGEST).first()
           or ApiToken(digest=ANONYMOUS_DIGEST, name=ANONYMOUS_NAME))
    if "allowed_models" in item:
        models = item["allowed_models"]
        if models is None:
            models = []
        if not isinstance(models, list) or not all(isinstance(m, str) and m.strip() for m in models):
            check.problems.append(f"{path}.allowed_models: must be a list of model names or patterns "
                                  "(gpt-*, @cf/*); empty or null: every model")
        elif any("," in m or "\n" in m for m in models):
            check.problems.append(f"{path}.allowed_models: one model name or pattern per item (no commas)")
        else:
            row.allowed_models = "\n".join(m.strip() for m in models)
    if isinstance(item.get("active"), bool):
        row.active = item["active"]
    _limits(check, path, item, row, (*COUNTS, *ApiToken.PER_ADDRESS_FIELDS))
    check.model_errors(path, row, exclude=["digest", "prefix"])
    return row


def _provider(check: _Checker, path: str, item: dict[str, Any], placeholders: bool = False) -> ProviderAccount:
    check.keys(path, item, PROVIDER_KEYS, ("name", "kind"))
    for key in ("name", "kind", "base_url", "api_key"):
        check.typed(path, item, key, str, "a string")
    check.typed(path, item, "options", dict, "a mapping")
    check.typed(path, item, "active", bool, "true or false")
    for key in ("connect_timeout", "first_byte_timeout", "read_timeout", "cooldown_window_seconds", "cooldown_seconds"):
        check.typed(path, item, key, (int, float), "a number of seconds")
    check.typed(path, item, "cooldown_failures", int, "a whole number")
    if isinstance(item.get("kind"), str) and item["kind"] not in ADAPTERS:
        check.problems.append(f"{path}.kind: unknown kind {item['kind']!r} (known: {', '.join(sorted(ADAPTERS))})")
    account = ProviderAccount.objects.filter(name=item.get("name")).first() or ProviderAccount(name=item.get("name"))
    for key in ("kind", "base_url", "options", "connect_timeout", "first_byte_timeout", "read_timeout",
                "active"):
        if key in item and item[key] is not None:
            setattr(account, key, item[key])
    for key in COOLDOWN_KEYS:  # `null`: the GATEWAY_COOLDOWN_* setting
        if key in item:
            setattr(account, key, item[key])
    check.model_errors(path, account, exclude=["api_key_encrypted", "kind"],
                       tolerate=(REQUIRED_OPTION,) if placeholders else ())
    return account


def _fallbacks(check: _Checker, path: str, item: dict[str, Any], entry: ModelEntry, model_names: set[str]) -> None:
    """``fallbacks: [name, ...]``: other models of this file or the database, by exact name."""
    if "fallbacks" not in item:
        return
    names = item["fallbacks"] if item["fallbacks"] is not None else []
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        check.problems.append(f"{path}.fallbacks: must be a list of model names")
        return
    for problem in fallback_problems(str(item.get("name")), names, model_names):
        check.problems.append(f"{path}.fallbacks: {problem}")
    entry.fallbacks = "\n".join(dict.fromkeys(name.strip() for name in names if name.strip()))


def _model(check: _Checker, path: str, item: dict[str, Any], provider_names: set[str],
           model_names: set[str]) -> ModelEntry:
    check.keys(path, item, MODEL_KEYS, ("name",))
    check.typed(path, item, "name", str, "a string")
    check.typed(path, item, "description", str, "a string")
    for key in ("context_window", "max_output_tokens"):
        check.typed(path, item, key, int, "a whole number")
    flags = ("is_default", "active", *ModelEntry.CAPABILITIES)
    for key in flags:
        check.typed(path, item, key, bool, "true or false")
    entry = ModelEntry.objects.filter(name=item.get("name")).first() or ModelEntry(name=item.get("name"))
    for key in ("description", "context_window", "max_output_tokens", *flags):
        if key in item and item[key] is not None:
            setattr(entry, key, item[key])
    for key in PRICE_KEYS:  # `null` unsets a price: the price list's is used
        price = check.decimal(path, item, key)
        if price is not None or (key in item and item[key] is None):
            setattr(entry, key, price)
    _fallbacks(check, path, item, entry, model_names)
    check.model_errors(path, entry, exclude=[])
    deployments = item.get("deployments", [])
    if not isinstance(deployments, list):
        check.problems.append(f"{path}.deployments: must be a list")
        deployments = []
    for i, dep in enumerate(deployments):
        where = f"{path}.deployments[{i}]"
        if not isinstance(dep, dict):
            check.problems.append(f"{where}: must be a mapping")
            continue
        check.keys(where, dep, DEPLOYMENT_KEYS, ("provider",))
        check.typed(where, dep, "model", str, "a string")
        check.typed(where, dep, "active", bool, "true or false")
        for key in ("weight", "priority"):
            check.typed(where, dep, key, int, "a whole number")
        if isinstance(dep.get("weight"), int) and dep["weight"] < 0:
            check.problems.append(f"{where}.weight: must be >= 0")
        provider = dep.get("provider")
        if isinstance(provider, str) and provider not in provider_names:
            check.problems.append(f"{where}.provider: no provider named {provider!r} in this file or the database")
        if not dep.get("model") and "*" not in str(item.get("name", "")) and provider:
            check.problems.append(f"{where}.model: required unless the model name is a pattern")
    return entry


def registry_is_empty() -> bool:
    return not ProviderAccount.objects.exists() and not ModelEntry.objects.exists()


def apply(document: Any, environ: Mapping[str, str] | None = None, placeholders: bool = False) -> Summary:
    """Validate the whole document, then apply it in one transaction.

    ``placeholders`` (the shipped defaults): a provider account that lacks an option its kind requires
    is saved anyway, unconfigured (its requests fail until an admin sets it), and the summary's
    ``notes`` say so; otherwise that is a problem like any other."""
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(["(top level): must be a mapping with 'teams', 'providers', 'models' and/or 'anonymous'"])
    problems: list[str] = []
    document = expand(document, "", problems, settings.ENV if environ is None else environ)
    check = _Checker()
    check.problems = problems
    for key in sorted(set(document) - set(SECTIONS)):
        check.problems.append(f"{key}: unknown section (expected {', '.join(SECTIONS)})")
    teams = [(path, item, _team(check, path, item)) for path, item in check.items(document, "teams")]
    anonymous = _anonymous(check, document["anonymous"]) if "anonymous" in document else None
    providers = [(path, item, _provider(check, path, item, placeholders))
                 for path, item in check.items(document, "providers")]
    names = {str(item.get("name")) for _, item, _ in providers}
    names |= set(ProviderAccount.objects.values_list("name", flat=True))
    model_items = check.items(document, "models")
    model_names = {str(item.get("name")) for _, item in model_items} | set(
        ModelEntry.objects.values_list("name", flat=True))
    model_names = {name for name in model_names if "*" not in name}
    models = [(path, item, _model(check, path, item, names, model_names)) for path, item in model_items]
    _duplicates(check, teams)
    _duplicates(check, providers)
    _duplicates(check, models)
    if check.problems:
        raise ConfigError(check.problems)
    summary = Summary(notes=check.notes)
    with transaction.atomic():
        for _, _, team in teams:
            (summary.updated if team.pk else summary.created).append(f"team {team.name}")
            team.save()
        if anonymous is not None:
            (summary.updated if anonymous.pk else summary.created).append("anonymous access")
            anonymous.save()
        accounts = {}
        for _, item, account in providers:
            (summary.updated if account.pk else summary.created).append(f"provider {account.name}")
            if item.get("api_key"):
                account.set_api_key(item["api_key"])
            elif "api_key" in item and item["api_key"] is None:  # `api_key: null` removes the stored key
                account.set_api_key("")
            account.save()
            accounts[account.name] = account
        for _, item, entry in models:
            (summary.updated if entry.pk else summary.created).append(f"model {entry.name}")
            if entry.is_default:
                ModelEntry.objects.exclude(name=entry.name).filter(is_default=True).update(is_default=False)
            entry.save()
            if "deployments" in item:
                entry.deployments.all().delete()
                for dep in item["deployments"] or []:
                    account = accounts.get(dep["provider"]) or ProviderAccount.objects.get(name=dep["provider"])
                    Deployment.objects.create(
                        model=entry, provider=account, upstream_model=dep.get("model") or "",
                        weight=dep.get("weight", 1), priority=dep.get("priority", 0), active=dep.get("active", True),
                    )
    return summary


def _duplicates(check: _Checker, rows: list[tuple[str, dict[str, Any], Any]]) -> None:
    seen: dict[str, str] = {}
    for path, item, _ in rows:
        name = str(item.get("name"))
        if name in seen:
            check.problems.append(f"{path}.name: {name!r} already defined at {seen[name]}")
        seen.setdefault(name, path)
