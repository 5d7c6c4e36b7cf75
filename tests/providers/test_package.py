"""The shape of providers/: no import cycles, nothing from the gateway, stateless adapters, small modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from providers.base import Account, Adapter
from providers.registry import ADAPTERS

ROOT = Path(__file__).resolve().parents[2] / "providers"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def imported(path: Path) -> set[str]:
    """Every module an import statement in the file names, at module level or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names
                         if f"{node.module}.{alias.name}" in MODULES)
    return names


def dependencies(name: str) -> set[str]:
    """The providers modules loading ``name`` loads first: its imports, and the packages above them."""
    found = set()
    for target in imported(MODULES[name]) | {name}:
        parts = target.split(".")
        found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in MODULES)
    found.discard(name)
    return found


def test_providers_never_import_the_gateway() -> None:
    for name, path in MODULES.items():
        assert not {m for m in imported(path) if m.split(".")[0] in ("gateway", "proxy_site")}, name


def test_there_is_no_import_cycle_in_providers() -> None:
    graph = {name: dependencies(name) for name in MODULES}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(name):], name]))
        if name in done:
            return
        for dependency in sorted(graph[name]):
            visit(dependency, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_no_module_is_over_500_lines() -> None:
    for name, path in MODULES.items():
        assert len(path.read_text().splitlines()) <= 500, name


@pytest.mark.parametrize(("kind", "cls"), sorted(ADAPTERS.items()))
def test_an_adapter_holds_only_its_account_across_calls(kind: str, cls: type[Adapter]) -> None:
    adapter = cls(Account("acct", kind, "http://127.0.0.1:9/v1", "key-0123456789", {"account_id": "acc1"}))
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "stream": True}
    adapter.chat_request(body, "m", 100)
    adapter.completion_request({"prompt": "hi", "max_tokens": 5}, "m", 100)
    adapter.chat_stream("m", True, {})
    assert vars(adapter) == {"account": adapter.account}
