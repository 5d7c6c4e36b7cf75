"""What a provider does with each field of a request — maps, drops or refuses it — declared once.

An adapter declares a ``ParameterPolicy`` for the OpenAI chat completion body:

- ``mapped``: fields its translator turns into the upstream's own parameters;
- ``dropped``: fields accepted and not sent, because they do not change the answer;
- ``refused``: fields that would change the answer in a way the upstream cannot honour. A ``Refuse``
  rule says which values are refused (``n`` other than 1, ``logprobs`` true); the other values
  mean "as if not sent" and are dropped;
- ``refused_values``: refusals of some values of a mapped or dropped field (a negative penalty);
- ``unknown``: the rule for fields the policy does not name (``None``: sent to the upstream as
  they are, for APIs that accept their own extra fields).

A null value counts as not sent: ``refused`` and ``refused_values`` never refuse it.

Every refusal is the same error, built by ``refusal`` alone: a 400 ``invalid_request_error``
with the code ``unsupported_parameter`` (or ``unsupported_value``) and the field as ``param``.
Translators use it too for what a policy cannot say (a content part, a tool of another type).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from providers.errors import ProviderError

UNSUPPORTED_PARAMETER = "unsupported_parameter"
UNSUPPORTED_VALUE = "unsupported_value"
REMOVE_IT = "remove it or use a model from another provider."


def refusal(provider: str, param: str, why: str = "", *, subject: str = "",
            code: str = UNSUPPORTED_PARAMETER) -> ProviderError:
    """The error for a request field, or a value of it, that ``provider`` cannot honour.

    The message reads "<subject> is not supported by the <provider> provider: <why>"; the subject
    defaults to "The parameter '<param>'" and the reason to advice to remove it.
    """
    subject = subject or f"The parameter '{param}'"
    return ProviderError(400, f"{subject} is not supported by the {provider} provider: {why or REMOVE_IT}",
                         "invalid_request_error", code, param)


def invalid(param: str, message: str, code: str = "invalid_value") -> ProviderError:
    """The error for a field whose value is malformed (wrong type, out of range, inconsistent)."""
    return ProviderError(400, message, "invalid_request_error", code, param)


# -- which values a rule refuses --------------------------------------------------------------------

def any_value(value: Any) -> bool:
    return True


def truthy(value: Any) -> bool:
    return bool(value)


def is_false(value: Any) -> bool:
    return value is False


def negative(value: Any) -> bool:
    return isinstance(value, int | float) and value < 0


def other_than(*neutral: Any) -> Callable[[Any], bool]:
    """Refuse every value but these (compared with ``==``: ``0`` also matches ``False``)."""
    return lambda value: value not in neutral


@dataclass(frozen=True)
class Refuse:
    """A refusal: which values (``when``), and what the message says (``subject``, ``why``)."""

    when: Callable[[Any], bool] = any_value
    why: str = ""
    subject: str = ""
    code: str = UNSUPPORTED_PARAMETER

    def error(self, provider: str, param: str) -> ProviderError:
        return refusal(provider, param, self.why, subject=self.subject, code=self.code)


@dataclass(frozen=True)
class ParameterPolicy:
    """One provider's declared handling of a request body's fields (see the module's docstring)."""

    mapped: frozenset[str] = frozenset()
    dropped: frozenset[str] = frozenset()
    refused: Mapping[str, Refuse] = field(default_factory=dict)
    refused_values: Mapping[str, Refuse] = field(default_factory=dict)
    unknown: Refuse | None = Refuse()

    def __post_init__(self) -> None:
        overlap = (self.mapped & self.dropped) | (self.mapped & self.refused.keys()) | (
            self.dropped & self.refused.keys())
        if overlap:
            raise ValueError(f"Fields declared twice: {sorted(overlap)}")
        stray = self.refused_values.keys() - self.mapped - self.dropped
        if stray:
            raise ValueError(f"Value refusals for fields neither mapped nor dropped: {sorted(stray)}")

    @property
    def known(self) -> frozenset[str]:
        """Every field the policy names."""
        return self.mapped | self.dropped | frozenset(self.refused)

    def check(self, body: Mapping[str, Any], provider: str) -> None:
        """Raise the refusal for a field of ``body`` that ``provider`` cannot honour, if there is one.

        Unknown fields come first, in the body's order; then the declared refusals, in their order.
        """
        known = self.known
        if self.unknown is not None:
            for name, value in body.items():
                if name not in known and self.unknown.when(value):
                    raise self.unknown.error(provider, name)
        for rules in (self.refused, self.refused_values):
            for name, rule in rules.items():
                value = body.get(name)
                if value is not None and rule.when(value):
                    raise rule.error(provider, name)

    def unknown_fields(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The fields of ``body`` the policy does not name (those an ``unknown=None`` policy passes on)."""
        known = self.known
        return {name: value for name, value in body.items() if name not in known}
