"""The one way a name from a request (a model id) becomes part of an upstream URL.

A client chooses the model, and a registry pattern such as ``@cf/*`` passes the requested name
through, so the name must not be able to reach another API path of the same upstream with the
gateway's key: ``@cf/../../../accounts/OTHER/ai/run/x`` must never become ``/accounts/OTHER/...``.
``path_segments`` refuses names with empty, ``.`` or ``..`` segments, backslashes, control
characters, ``?`` or ``#``, and percent-encodes each segment, so that what the upstream receives is
exactly the path the adapter meant plus the name as literal segment(s).
"""

from __future__ import annotations

from urllib.parse import quote

from providers.parameters import invalid

MAX_NAME = 200


def path_segments(name: str, *, slashes: bool = False, param: str = "model") -> str:
    """``name`` as one URL path segment (or, with ``slashes``, as several), percent-encoded.

    Raises the client's 400 (``invalid_value`` on ``param``) for a name that could escape its place.
    """
    if not name or len(name) > MAX_NAME or any(c in name for c in "\\?#%") or not name.isprintable():
        raise invalid(param, f"The {param} name {name[:MAX_NAME]!r} is not a valid upstream {param} id.")
    parts = name.split("/") if slashes else [name]
    if any(part in ("", ".", "..") for part in parts):
        raise invalid(param, f"The {param} name {name[:MAX_NAME]!r} is not a valid upstream {param} id.")
    return "/".join(quote(part, safe="@:-._~") for part in parts)
