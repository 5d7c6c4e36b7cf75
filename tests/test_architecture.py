"""The project's structural rules, checked by reading the source (``ast``/``tokenize``, nothing imported).

Every rule walks the directories, so a module added or moved tomorrow is checked like today's; the only
names written down here are the allow-lists the rules themselves name.
"""

from __future__ import annotations

import ast
import io
import itertools
import re
import tokenize
from collections import deque
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "providers", "proxy_site")
EXCLUDED = ("gateway/migrations",)  # generated code
MAX_LINES = 500

# The allow-lists the rules name. The entry points (manage.py, proxy_site/asgi.py, proxy_site/wsgi.py)
# only call proxy_site.settings.use_these_settings(), which reads nothing itself, so they need no entry.
ENVIRONMENT_READERS = {"proxy_site/settings.py"}
OS_ENVIRONMENT = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
TYPE_CHECKING_GUARDS = {"TYPE_CHECKING", "typing.TYPE_CHECKING"}
UPSTREAM_IO = {"gateway/inference/transport.py"}
HTTP_CLIENTS = {"aiohttp", "httpx"}
# Not "openai": the gateway's own API is OpenAI's (its envelope, the ``openai`` SDK).
PROVIDER_NAMES = re.compile(r"cloudflare|gemini|anthropic", re.IGNORECASE)
OUTSIDE_DOCUMENTS = re.compile(
    r"providers\.md|DESIGN\.md|perf-notes\.md|§|the performance issue|the security issue", re.IGNORECASE
)


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def python_files(*folders: str) -> list[Path]:
    """Every .py file under the folders (a top-level file such as manage.py may be named too)."""
    found: list[Path] = []
    for folder in folders:
        base = ROOT / folder
        candidates = [base] if base.is_file() else sorted(base.rglob("*.py"))
        found += [p for p in candidates if "__pycache__" not in p.parts and not rel(p).startswith(EXCLUDED)]
    return found


@cache
def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path, type_checking: bool = False) -> Iterator[tuple[str, str | None, int]]:
    """(module, name or None, line) for every import, lazy ones too; under ``if TYPE_CHECKING:`` only
    when asked. ``from x import y`` gives ("x", "y"); relative imports are made absolute."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]

    def walk(node: ast.AST) -> Iterator[tuple[str, str | None, int]]:
        if not type_checking and isinstance(node, ast.If) and ast.unparse(node.test) in TYPE_CHECKING_GUARDS:
            children: list[ast.AST] = list(node.orelse)
        else:
            children = list(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            yield from ((alias.name, None, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0]
                base = f"{anchor}.{base}" if base else anchor
            yield from ((base, alias.name, node.lineno) for alias in node.names)
        for child in children:
            yield from walk(child)

    yield from walk(tree(path))


def first_party_graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], str]]:
    """Module -> the first-party modules it imports (``pkg.sub.mod`` means that module, not its parents),
    and where each edge's first import is (file:line)."""
    modules = {module_name(p): p for p in python_files(*PACKAGES)}

    def resolve(module: str, name: str | None) -> str | None:
        if name and f"{module}.{name}" in modules:
            return f"{module}.{name}"
        parts = module.split(".")
        for end in range(len(parts), 0, -1):  # `import a.b.c` where only a.b is a module file
            if ".".join(parts[:end]) in modules:
                return ".".join(parts[:end])
        return None

    graph: dict[str, set[str]] = {name: set() for name in modules}
    where: dict[tuple[str, str], str] = {}
    for name, path in modules.items():
        for module, imported, line in imported_names(path, type_checking=True):  # a type-only import ties modules too
            if (target := resolve(module, imported)) is not None:
                graph[name].add(target)
                where.setdefault((name, target), f"{rel(path)}:{line}")
    return graph, where


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The shortest cycle through every module that is on one, each cycle listed once."""
    found: dict[frozenset[str], list[str]] = {}
    for start in sorted(graph):
        parent: dict[str, str] = {}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            if start in graph[node]:
                chain = [node]
                while chain[-1] != start:
                    chain.append(parent[chain[-1]])
                chain = [*reversed(chain), start]
                found.setdefault(frozenset(chain), chain)
                break
            for nxt in sorted(graph[node]):
                if nxt not in parent and nxt != start:
                    parent[nxt] = node
                    queue.append(nxt)
    return list(found.values())


def test_no_import_cycles_among_first_party_modules() -> None:
    graph, where = first_party_graph()
    chains = [
        " -> ".join(chain) + "\n    via " + ", ".join(where[edge] for edge in itertools.pairwise(chain))
        for chain in cycles(graph)
    ]
    assert not chains, "import cycles:\n" + "\n".join(chains)


def test_providers_never_import_gateway_proxy_site_or_django() -> None:
    forbidden = {"gateway", "proxy_site", "django"}
    hits = [
        f"{rel(path)}:{line}: {module}"
        for path in python_files("providers")
        for module, _, line in imported_names(path, type_checking=True)  # a type is a dependency too
        if module.split(".")[0] in forbidden
    ]
    assert not hits, "providers/ must be pure translation:\n" + "\n".join(hits)


def reads_environment(node: ast.AST) -> bool:
    """``os.environ``/``os.getenv``/..., ``from os import environ``, or ``<anything>environ.get``."""
    if isinstance(node, ast.ImportFrom) and node.module == "os":
        return any(alias.name in OS_ENVIRONMENT for alias in node.names)
    if not isinstance(node, ast.Attribute):
        return False
    if isinstance(node.value, ast.Name) and node.value.id == "os" and node.attr in OS_ENVIRONMENT:
        return True
    return node.attr == "get" and getattr(node.value, "id", getattr(node.value, "attr", None)) == "environ"


def test_only_settings_reads_the_environment() -> None:
    hits = [
        f"{rel(path)}:{node.lineno}"
        for path in python_files(*PACKAGES, "manage.py")
        if rel(path) not in ENVIRONMENT_READERS
        for node in ast.walk(tree(path))
        if reads_environment(node)
    ]
    assert not hits, "only proxy_site/settings.py may read the environment:\n" + "\n".join(hits)


def test_only_the_transport_module_imports_an_http_client() -> None:
    hits = [
        f"{rel(path)}:{node.lineno}"
        for path in python_files(*PACKAGES, "manage.py")
        if rel(path) not in UPSTREAM_IO
        for node in ast.walk(tree(path))  # TYPE_CHECKING imports too: the type is the client's
        if isinstance(node, ast.Import | ast.ImportFrom)
        for module in ([a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""])
        if module.split(".")[0] in HTTP_CLIENTS
    ]
    assert not hits, f"only {sorted(UPSTREAM_IO)} does upstream I/O:\n" + "\n".join(hits)


def test_no_module_over_500_lines() -> None:
    lengths = {rel(p): len(p.read_text(encoding="utf-8").splitlines()) for p in python_files(*PACKAGES)}
    long = [f"{name}: {n} lines" for name, n in sorted(lengths.items()) if n > MAX_LINES]
    assert not long, "\n".join(long)


def docstring_lines(path: Path) -> set[int]:
    """Lines of every bare string statement (docstrings, and strings used as comments)."""
    return {
        line
        for node in ast.walk(tree(path))
        if isinstance(node, ast.Expr) and isinstance(getattr(node.value, "value", None), str)
        for line in range(node.lineno, (node.end_lineno or node.lineno) + 1)
    }


def tokens(path: Path) -> Iterator[tokenize.TokenInfo]:
    yield from tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)


CODE_TOKENS = {tokenize.NAME, tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}


def report(hits: set[tuple[str, int]]) -> list[str]:
    return [f"{name}:{line}" for name, line in sorted(hits)]


def provider_names_in_code() -> list[str]:
    """file:line of each identifier or string (not docstring, not comment) naming a provider kind."""
    hits = set()
    for path in python_files("gateway", "proxy_site"):
        documentation = docstring_lines(path)
        for tok in tokens(path):
            in_code = tok.type in CODE_TOKENS and tok.start[0] not in documentation
            if in_code and PROVIDER_NAMES.search(tok.string):
                hits.add((rel(path), tok.start[0]))
    return report(hits)


def outside_document_references() -> list[str]:
    """file:line of each comment or docstring that points at a document the repository does not hold."""
    hits = set()
    for path in python_files("gateway", "providers", "proxy_site", "bench"):
        documentation = docstring_lines(path)
        for tok in tokens(path):
            is_doc = tok.type == tokenize.STRING and tok.start[0] in documentation
            if (tok.type == tokenize.COMMENT or is_doc) and (match := OUTSIDE_DOCUMENTS.search(tok.string)):
                line = tok.start[0] + tok.string[: match.start()].count("\n")
                hits.add((rel(path), line))
    return report(hits)


def test_no_provider_name_outside_providers() -> None:
    hits = provider_names_in_code()
    assert not hits, "provider kinds named outside providers/:\n" + "\n".join(hits)


def test_no_comment_references_a_document_outside_the_repository() -> None:
    hits = outside_document_references()
    assert not hits, "comments/docstrings citing documents not in the repository:\n" + "\n".join(hits)
