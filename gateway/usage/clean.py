"""Log rows the database cannot refuse: every value fits its ``RequestLog`` column.

Much of a row comes from the client (model name, session id, error messages quoting them, bodies)
or from an upstream (usage counts). PostgreSQL refuses text with a NUL, no driver encodes a lone
surrogate, a varchar refuses a longer string and an integer column a number out of its range; one
such value used to fail its whole batch, again and again. ``clean_row`` makes a row safe where
it is built (NUL and lone surrogates become U+FFFD, text is cut to its column's ``max_length``,
numbers are clamped to their column's range); ``scrub_row`` is the writer's last resort for a row
the database refused even so (text reduced to printable ASCII).

The per-column limits are read from the model once. The common case is cheap: ``str.isascii()``
is a flag test, ``"\\x00" in s`` a memchr, and a number in range is one comparison.
"""

from __future__ import annotations

import re
import sys
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.backends.base.operations import BaseDatabaseOperations
from django.utils import timezone

_SURROGATES = re.compile("[\ud800-\udfff]")
_NUL = "\x00"
_REPLACEMENT = "\ufffd"
_ABSENT = object()
_UNBOUNDED = sys.maxsize  # a TextField's "max_length"


class _Columns:
    """``RequestLog``'s columns by kind, read from the model on first use."""

    def __init__(self) -> None:
        from django.db import models

        from gateway.models import RequestLog

        self.text: list[tuple[str, int]] = []  # (attname, max_length)
        self.integer: list[tuple[str, int, int, bool]] = []  # (attname, lowest, highest, nullable)
        self.boolean: list[str] = []
        self.decimal: list[tuple[str, Decimal, bool]] = []  # (attname, largest magnitude, nullable)
        ranges = BaseDatabaseOperations.integer_field_ranges  # the strictest of the backends Django ships
        for field in RequestLog._meta.concrete_fields:
            if field.primary_key:
                continue
            kind = (field.target_field if field.is_relation else field).get_internal_type()
            if isinstance(field, (models.CharField, models.TextField)):
                self.text.append((field.attname, field.max_length or _UNBOUNDED))
            elif kind in ranges:
                self.integer.append((field.attname, *ranges[kind], field.null))
            elif isinstance(field, models.BooleanField):
                self.boolean.append(field.attname)
            elif isinstance(field, models.DecimalField):
                whole, places = field.max_digits - field.decimal_places, field.decimal_places
                self.decimal.append((field.attname, Decimal(10) ** whole - Decimal(10) ** -places, field.null))


_columns: _Columns | None = None


def _spec() -> _Columns:
    global _columns
    if _columns is None:
        _columns = _Columns()
    return _columns


def clean_text(value: Any, limit: int | None) -> str:
    """``value`` as text any database stores: no NUL, no lone surrogate, at most ``limit`` characters."""
    if type(value) is not str:
        value = "" if value is None else str(value)
    if limit is not None and len(value) > limit:
        value = value[:limit]  # first: what follows only replaces characters one for one
    if _NUL in value:
        value = value.replace(_NUL, _REPLACEMENT)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = _SURROGATES.sub(_REPLACEMENT, value)
    return value


def clean_int(value: Any, lowest: int, highest: int, nullable: bool) -> int | None:
    if type(value) is int and lowest <= value <= highest:
        return value
    if value is None and nullable:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):  # None, junk text, inf, nan
        return None if nullable else max(lowest, 0)
    return min(max(number, lowest), highest)


def clean_decimal(value: Any, largest: Decimal) -> Decimal:
    try:
        number = value if type(value) is Decimal else Decimal(value)
        if number.is_nan():
            return Decimal(0)
    except (TypeError, ValueError, InvalidOperation):
        return Decimal(0)
    if -largest <= number <= largest:
        return number
    return largest if number > 0 else -largest


def clean_row(row: dict[str, Any]) -> dict[str, Any]:
    """Make ``row``'s values fit their columns, in place; returns it. Absent columns stay absent."""
    spec = _spec()
    get = row.get
    for name, limit in spec.text:
        value = get(name, _ABSENT)
        # The fast path: ASCII text that fits, without NUL, is already safe.
        if value.__class__ is str and len(value) <= limit and value.isascii() and _NUL not in value:
            continue
        if value is not _ABSENT:
            row[name] = clean_text(value, limit)
    for name, lowest, highest, nullable in spec.integer:
        value = get(name, _ABSENT)
        if value.__class__ is int and lowest <= value <= highest:
            continue
        if value is not _ABSENT:
            row[name] = clean_int(value, lowest, highest, nullable)
    for name in spec.boolean:
        value = get(name, _ABSENT)
        if value.__class__ is not bool and value is not _ABSENT:
            row[name] = bool(value)
    for name, largest, nullable in spec.decimal:
        value = get(name, _ABSENT)
        if value.__class__ is Decimal and value.is_finite() and -largest <= value <= largest:
            continue
        if value is None and nullable:  # (an unknown cost stays unknown)
            continue
        if value is not _ABSENT:
            row[name] = clean_decimal(value, largest)
    return row


def _ascii(value: Any, limit: int | None) -> str:
    text = clean_text(value, limit)
    if text.isascii() and text.isprintable():
        return text
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def scrub_row(row: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``row`` reduced further, for one the database refused even clean: printable ASCII
    text (anything else becomes ``?``), numbers clamped, a real time."""
    scrubbed = clean_row(dict(row))
    for name, limit in _spec().text:
        if name in scrubbed:
            scrubbed[name] = _ascii(scrubbed[name], limit)
    if not isinstance(scrubbed.get("created_at"), datetime):
        scrubbed["created_at"] = timezone.now()
    return scrubbed
