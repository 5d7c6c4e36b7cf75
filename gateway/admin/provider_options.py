"""A provider account's options as form fields: one per option each kind declares (``option_specs`` of
its adapter class, read from the registry), plus an "other options" JSON field for keys no kind declares.

Every kind's fields are on the page (named ``options__<kind>__<option>``, labelled with the kind);
``gateway/static/gateway/admin/provider_options.js`` shows only the selected kind's. Only the selected
kind's values are read back. A value the form shows unchanged is stored as the account held it (a
value the configuration file wrote as ``1`` stays ``1``), and an option left at its default is not
added: saving an unchanged form leaves the options exactly as they were.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django import forms
from django.utils.html import escape

from providers.base import BOOL, HEADERS, OptionSpec
from providers.registry import kind_choices, option_specs

PREFIX = "options__"
OTHER = "other_options"
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP token (RFC 9110)


def field_name(kind: str, option: str) -> str:
    """The form field of ``kind``'s option ``option``."""
    return f"{PREFIX}{kind}__{option}"


def declared() -> list[tuple[str, str, OptionSpec]]:
    """(kind, kind label, option) for every option of every kind, in the registry's order."""
    return [(kind, label, spec) for kind, label in kind_choices() for spec in option_specs(kind)]


def declaring_kinds() -> dict[str, list[str]]:
    """Each declared option name and the labels of the kinds that declare it."""
    found: dict[str, list[str]] = {}
    for _, label, spec in declared():
        found.setdefault(spec.name, []).append(label)
    return found


def headers_text(value: Any) -> str:
    """A headers mapping as the textarea shows it: one "Name: value" per line."""
    if not isinstance(value, Mapping):
        return ""
    return "\n".join(f"{name}: {item}" for name, item in value.items())


def parse_headers(text: str) -> dict[str, str]:
    """The textarea's "Name: value" lines as a mapping (blank lines skipped)."""
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not _HEADER_NAME.match(name.strip()):
            raise forms.ValidationError(f"Line {number}: expected \"Header-Name: value\", got {line.strip()[:60]!r}.")
        found[name.strip()] = value.strip()
    return found


def form_value(spec: OptionSpec, stored: Any) -> Any:
    """What the form shows for a stored value (absent: the option's default)."""
    if spec.type == BOOL:
        return bool(spec.default if stored is None else stored)
    if spec.type == HEADERS:
        return headers_text(stored)
    return "" if stored is None else str(stored)


def _empty(spec: OptionSpec) -> Any:
    """The form value that means "not set": the default's, or nothing."""
    return form_value(spec, None)


def form_field(kind_label: str, spec: OptionSpec, kind: str) -> forms.Field:
    attrs = {"data-provider-kind": kind}
    label = f"{spec.label} ({kind_label}{', required' if spec.required else ''})"
    help_text = escape(f"{spec.help} Option {spec.name}.")  # (the admin renders help text as HTML)
    if spec.type == BOOL:
        return forms.BooleanField(required=False, label=label, help_text=help_text,
                                  widget=forms.CheckboxInput(attrs=attrs))
    if spec.type == HEADERS:
        return forms.CharField(required=False, label=label, help_text=f"{help_text} One \"Name: value\" per line.",
                               widget=forms.Textarea(attrs={**attrs, "rows": 3, "cols": 60}))
    return forms.CharField(required=False, label=label, help_text=help_text, strip=True,
                           widget=forms.TextInput(attrs={**attrs, "class": "vTextField"}))


def option_fields() -> dict[str, forms.Field]:
    """Every kind's option fields, and the other-options one: declared on the form class (the admin's
    fieldsets may only name declared fields)."""
    fields: dict[str, forms.Field] = {field_name(kind, spec.name): form_field(label, spec, kind)
                                      for kind, label, spec in declared()}
    fields[OTHER] = forms.JSONField(
        required=False, label="Other options (JSON)",
        help_text="Keys no kind declares, passed to the adapter as they are (e.g. ones a configuration file set). "
                  "Each kind's own options have their fields above.",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))
    return fields


def initial(options: Mapping[str, Any]) -> dict[str, Any]:
    """The fields' initial values from an account's stored options: every kind's field of an option
    name shows the stored value (switching between kinds that share an option keeps it)."""
    values: dict[str, Any] = {field_name(kind, spec.name): form_value(spec, options.get(spec.name))
                              for kind, _, spec in declared()}
    names = declaring_kinds()
    values[OTHER] = {key: value for key, value in options.items() if key not in names}
    return values


def read(form: forms.Form, kind: str, before: Mapping[str, Any]) -> dict[str, Any]:
    """The options to store for ``kind`` from the form's cleaned data; ``before``: what the account held.
    Problems are added to the form's fields (a headers line that is not "Name: value", a declared
    option typed into the JSON)."""
    options: dict[str, Any] = {}
    for spec in option_specs(kind):
        name = field_name(kind, spec.name)
        value = form.cleaned_data.get(name)
        if spec.type == HEADERS:
            try:
                value = parse_headers(value or "")
            except forms.ValidationError as exc:
                form.add_error(name, exc)
                continue
            try:
                shown = parse_headers(form_value(spec, before.get(spec.name))) if spec.name in before else None
            except forms.ValidationError:  # (stored by hand as something the textarea cannot show)
                shown = None
        else:
            shown = form_value(spec, before.get(spec.name)) if spec.name in before else None
            shown = shown.strip() if isinstance(shown, str) else shown
        if spec.name in before and value == shown:
            options[spec.name] = before[spec.name]  # unchanged: as it was stored
        elif value != (parse_headers(_empty(spec)) if spec.type == HEADERS else _empty(spec)):
            options[spec.name] = value
    other = form.cleaned_data.get(OTHER)
    if other in (None, ""):
        other = {}
    if not isinstance(other, dict):
        form.add_error(OTHER, "Must be a JSON object ({\"name\": value, ...}).")
        return options
    names = declaring_kinds()
    own = {spec.name for spec in option_specs(kind)}
    for key in other:
        if key in own:
            form.add_error(OTHER, f"{key!r} has its own field above: set it there.")
        elif key in names:
            form.add_error(OTHER, f"{key!r} is an option of {', '.join(names[key])}, not of this kind.")
    return {**options, **{key: value for key, value in other.items() if key not in names}}
