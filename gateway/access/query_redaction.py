"""Keeping a token that came in a URL (``?auth_token=``) out of anything written down.

``redact_query`` matches the parameter as the parsers that accept the token see it: a name is
percent- and ``+``-decoded first (``auth%5Ftoken`` is ``auth_token`` to ``parse_qsl`` and to
Django's ``QueryDict``), every occurrence counts (a repeated parameter: the last one is used),
and names are compared without surrounding spaces and case, so that it errs towards hiding.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

QUERY_TOKEN_PARAMETER = "auth_token"
REDACTED = "[redacted]"

# "&" separates parameters for parse_qsl and QueryDict; ";" too for older parsers: split on both.
_SEPARATOR = re.compile(r"([&;])")


def _is_token_name(raw_name: str) -> bool:
    return unquote_plus(raw_name, errors="replace").strip().lower() == QUERY_TOKEN_PARAMETER


def redact_query(query_string: str) -> str:
    """The query string with the value of every ``auth_token`` parameter replaced by ``[redacted]``."""
    if "=" not in query_string:
        return query_string
    parts = _SEPARATOR.split(query_string)
    for i in range(0, len(parts), 2):  # (odd indexes are the separators)
        name, equals, value = parts[i].partition("=")
        if equals and value and _is_token_name(name):
            parts[i] = f"{name}={REDACTED}"
    return "".join(parts)


def redact_url(url: str) -> str:
    """A path with its query string, as written in an access log, with ``redact_query`` applied."""
    path, question, query = url.partition("?")
    return f"{path}?{redact_query(query)}" if question else url
