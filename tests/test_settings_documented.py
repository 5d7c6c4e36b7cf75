"""README's environment-variable table names every variable proxy_site/settings.py reads."""

from __future__ import annotations

from pathlib import Path

from tests.settings_env import variables_read

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_documents_every_environment_variable_the_settings_read() -> None:
    readme = README.read_text(encoding="utf-8")
    table = readme[readme.index("## Configuration"):readme.index("### Modes")]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    documented = {name for row in rows for name in row.split("|")[1].replace("`", " ").replace(",", " ").split()}
    assert len(variables_read()) > 40  # (the reader of settings.py finds them)
    assert sorted(variables_read() - documented) == []
