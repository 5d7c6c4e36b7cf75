"""Keeping provider keys out of everything the gateway says: responses, stream events, headers,
log rows, the admin, ``/health`` and log lines.

Upstreams echo keys back in many forms: whole, cut (the part after a prefix, ``...cdef``),
upper-cased, or only their first characters. So the ``Redactor`` does not look for the exact key:
a run of key-like characters (``[A-Za-z0-9_-]``) is replaced whole when it holds ``GRAM``
consecutive characters of a known key, compared case-insensitively. Runs are checked every
``STEP`` characters, so any piece of a key at least ``SHORTEST`` characters long is found
(a key's halves and its first 12 characters are longer). Keys are learnt from every provider
account each time the registry is loaded (``install``).

Cost: one ``bytes.translate`` and ``split`` per text plus a set lookup per long run, and runs seen
clean are remembered: ~2 µs for a 250-byte stream chunk on this machine.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from providers.base import redact

GRAM = 8
STEP = 4
SHORTEST = GRAM + STEP - 1
MARK = "[redacted]"
MAX_REMEMBERED = 50_000

_KEY_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789_-")
# Lower-cases key characters and turns every other byte into a space, so split() yields the runs.
_RUNS_TABLE = bytes(c if c in _KEY_CHARS else 0x20 for c in bytes(range(256)).lower())
_RUN = re.compile(rb"[A-Za-z0-9_\-]{%d,}" % GRAM)


class Redactor:
    """Finds and replaces pieces of the secrets it was given (see the module's docstring)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._grams = frozenset(
            secret[i : i + GRAM].lower().encode()
            for secret in secrets if len(secret) >= GRAM
            for i in range(len(secret) - GRAM + 1)
        )
        self._clean: set[bytes] = set()

    def __bool__(self) -> bool:
        return bool(self._grams)

    def _holds_secret(self, run: bytes, step: int = STEP) -> bool:
        grams = self._grams
        return any(run[i : i + GRAM] in grams for i in range(0, len(run) - GRAM + 1, step))

    def found_in(self, data: bytes) -> bool:
        if not self._grams:
            return False
        clean = self._clean
        for run in data.translate(_RUNS_TABLE).split():
            if len(run) < SHORTEST or run in clean:
                continue
            if self._holds_secret(run):
                return True
            if len(clean) < MAX_REMEMBERED:
                clean.add(run)
        return False

    def data(self, data: bytes) -> bytes:
        """Bytes for a client (a JSON body, whole SSE events, a header value) with every piece of a key replaced."""
        if not self.found_in(data):
            return data
        mark = MARK.encode()
        return _RUN.sub(lambda m: mark if self._holds_secret(m.group().lower(), 1) else m.group(), data)

    def text(self, text: str) -> str:
        """The same for text (log rows, messages, pages), and anything shaped like another service's key."""
        raw = text.encode("utf-8", "surrogatepass")
        if self.found_in(raw):
            text = self.data(raw).decode("utf-8", "surrogatepass")
        return redact(text, "")  # (the adapters' rule for keys of other services: "sk-...abcd", "AIza...")


_current = Redactor()


def install(secrets: Iterable[str]) -> None:
    """Recognise these keys from now on (the registry loader passes every provider account's key)."""
    global _current
    _current = Redactor(secret for secret in secrets if secret)


def current() -> Redactor:
    return _current


def text(value: str) -> str:
    return _current.text(value)


def data(value: bytes) -> bytes:
    return _current.data(value)


class RedactLogRecords(logging.Filter):
    """A logging filter (on the root handler, see settings.LOGGING): a record's message and
    traceback leave with every piece of a provider key replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _current.text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info:
            record.exc_text = _current.text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True
