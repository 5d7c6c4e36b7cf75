"""Browser tests: Playwright for Python driving Debian's Chromium (never a downloaded browser).

They skip, saying how to run them, unless ``--browser`` is given (CI's ``.ci/run`` installs
Chromium and Playwright and passes it); with it, a missing browser fails the run. Screenshots of every page go to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
HOW_TO = ("apt-get install -y chromium && .venv/bin/pip install playwright, then "
          ".venv/bin/pytest --browser tests/browser")


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> Iterator[Any]:
    if not request.config.getoption("--browser"):
        pytest.skip(f"browser tests run with --browser: {HOW_TO}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"Playwright for Python is not installed: {HOW_TO}")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: {HOW_TO}")
    # Function-scoped, and listed after the live gateway and the database: Playwright's sync API runs
    # an event loop in this thread, where Django refuses queries, so it must stop before their teardown.
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Path:
    """This test's screenshot folder, emptied first."""
    folder = ARTIFACTS / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder
