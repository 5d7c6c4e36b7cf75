"""Claude Code itself against a live gateway: `claude -p` answered by the fake upstreams of two provider
kinds (Anthropic passed through, OpenAI translated).

Claude Code is installed with npm into .cache/claude-code (once; later runs reuse it). Without npm,
or when the install fails (no registry), the test is skipped — except under CI=true, where it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import make_fake_provider, make_model, make_token

CACHE = Path(__file__).resolve().parents[3] / ".cache" / "claude-code"
PACKAGE = "@anthropic-ai/claude-code"


def unavailable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"Claude Code is needed under CI: {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def claude() -> Path:
    binary = CACHE / "node_modules" / ".bin" / "claude"
    if not binary.exists():
        npm = shutil.which("npm")
        if npm is None:
            unavailable("npm is not installed")
        CACHE.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(CACHE), PACKAGE],
                           check=True, capture_output=True, timeout=600)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            unavailable(f"npm install {PACKAGE} failed: {getattr(exc, 'stderr', b'')[-500:]!r}")
    if subprocess.run([str(binary), "--version"], capture_output=True, timeout=60).returncode != 0:
        unavailable("the installed Claude Code does not run here")
    return binary


def run(claude: Path, gateway_url: str, token: str, model: str, tmp_path: Path) -> subprocess.CompletedProcess:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": str(home), "ANTHROPIC_BASE_URL": gateway_url,
        "ANTHROPIC_AUTH_TOKEN": token, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1", "DISABLE_BUG_COMMAND": "1",
        "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1", "ANTHROPIC_SMALL_FAST_MODEL": model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": model, "CI": "true",
    }
    return subprocess.run([str(claude), "-p", "say hi", "--model", model], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=180)


@pytest.mark.parametrize("kind, upstream_model", [("anthropic", "claude-sonnet-4-20250514"), ("openai", "gpt-4o-mini")])
def test_claude_code_answers_through_the_gateway(claude: Path, live_gateway, fakes, tmp_path: Path,
                                                 kind: str, upstream_model: str) -> None:
    account = make_fake_provider(kind, fakes[kind])
    make_model(f"claude-via-{kind}", (account, upstream_model))
    result = run(claude, live_gateway.url, make_token(), f"claude-via-{kind}", tmp_path)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])
    assert "Echo:" in result.stdout and "say hi" in result.stdout, result.stdout[-2000:]
    assert any(r.path.endswith("/messages") or r.path.endswith("/chat/completions") for r in fakes[kind].requests)
