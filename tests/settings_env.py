"""The environment variables proxy_site/settings.py reads, found in its source (nothing imported)."""

from __future__ import annotations

import ast
from pathlib import Path

SETTINGS = Path(__file__).resolve().parent.parent / "proxy_site" / "settings.py"
# settings.py's readers: each takes the variable's name first.
READERS = {"_bool", "_int", "_float", "_str", "_list", "_log_bodies", "_required", "_proxy_ssl_header"}


def _name(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def variables_read() -> set[str]:
    """Every name passed to ENV.get, ENV[...] or one of READERS, and each ``_GATEWAY_ENV`` entry's variable."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(SETTINGS.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            reader = (isinstance(func, ast.Name) and func.id in READERS) or (
                isinstance(func, ast.Attribute) and func.attr == "get" and isinstance(func.value, ast.Name)
                and func.value.id == "ENV")
            if reader and _name(node.args[0]):
                found.add(_name(node.args[0]))
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "ENV":
            if _name(node.slice):
                found.add(_name(node.slice))
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_GATEWAY_ENV"
                                                  for t in node.targets):
            found |= {_name(value.elts[0]) for value in node.value.values if isinstance(value, ast.Tuple)}
    found.discard(None)
    return found
