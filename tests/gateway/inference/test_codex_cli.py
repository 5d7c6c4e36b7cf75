"""Codex CLI itself against a live gateway: `codex exec` with the gateway as a custom model provider
(the Responses API), answered by the fake upstreams of two provider kinds (OpenAI passed through,
Anthropic translated). Codex offers namespace, function and web-search tools on every request.

Codex is installed with npm into .cache/codex (once; later runs reuse it), and runs with its update
check and analytics off. Without npm, or when the install fails, the test is skipped — except under
CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import LiveGateway, make_fake_provider, make_model, make_token

ROOT = Path(__file__).resolve().parents[3]
CLIENTS = ROOT / ".cache" / "codex"
PACKAGES = ("@openai/codex",)
pytestmark = pytest.mark.django_db(transaction=True)


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI must run the real-client tests)")
    pytest.skip(f"{why}: install Node.js 20 and npm to run Codex CLI against the gateway")


@pytest.fixture(scope="session")
def clients() -> Path:
    """The folder whose node_modules/.bin holds ``codex``."""
    bin_dir = CLIENTS / "node_modules" / ".bin"
    if (bin_dir / "codex").exists():
        return bin_dir
    npm = shutil.which("npm")
    if npm is None:
        _unavailable("npm is not on PATH")
    CLIENTS.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([npm, "install", "--prefix", str(CLIENTS), "--no-audit", "--no-fund", *PACKAGES],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not (bin_dir / "codex").exists():
        _unavailable(f"npm install {' '.join(PACKAGES)} failed: {done.stderr[-500:]}")
    return bin_dir


def quiet_env(home: Path) -> dict[str, str]:
    """A clean environment for Codex: its own home, no proxy variables, no key but the gateway token."""
    keep = {name: os.environ[name] for name in ("PATH", "LANG", "TERM") if name in os.environ}
    return {**keep, "HOME": str(home), "NO_COLOR": "1", "CI": "1"}


def codex_config(home: Path, gateway: LiveGateway, model: str) -> Path:
    """A Codex home whose config.toml names the gateway as a custom model provider (as the README shows)."""
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True)
    (codex_home / "config.toml").write_text(f'''model = "{model}"
model_provider = "gateway"
check_for_update_on_startup = false

[analytics]
enabled = false

[model_providers.gateway]
name = "AI gateway"
base_url = "{gateway.v1}"
env_key = "GATEWAY_TOKEN"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
''')
    return codex_home


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_codex_exec_answers_through_the_gateway(clients: Path, live_gateway: LiveGateway, fakes: dict,
                                                tmp_path: Path, kind: str) -> None:
    account = make_fake_provider(kind, fakes[kind])
    upstream = "gpt-4o-mini" if kind == "openai" else "claude-haiku-4-5"
    make_model("codex-model", (account, upstream), input_price_per_million="1", output_price_per_million="2")
    token = make_token("codex")
    codex_home = codex_config(tmp_path, live_gateway, "codex-model")
    env = {**quiet_env(tmp_path), "CODEX_HOME": str(codex_home), "GATEWAY_TOKEN": token}
    done = subprocess.run([str(clients / "codex"), "exec", "--skip-git-repo-check", "--color", "never",
                           "Reply with the word pong."], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Echo:" in done.stdout and "pong" in done.stdout, done.stdout[-2000:]
    assert [r.path for r in fakes[kind].requests], "the fake upstream was not called"
    live_gateway.flush_logs()
    from gateway.models import RequestLog

    assert RequestLog.objects.filter(endpoint="responses", status_code=200, token_name="codex").exists()
