"""Model-name patterns: ``*`` matches any run of characters, everything else is literal."""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern)) + r"\Z")


def matches(pattern: str, name: str) -> bool:
    if "*" not in pattern:
        return pattern == name
    return compile_pattern(pattern).match(name) is not None


def specificity(pattern: str) -> tuple[int, int]:
    """Order patterns most specific first: more literal characters, then fewer wildcards."""
    return (-len(pattern.replace("*", "")), pattern.count("*"))
