"""The real clients, end to end: Codex CLI (the Responses API) and Claude Code (the Messages API),
installed from npm and run non-interactively against the live gateway, answered by fake upstreams
of two provider kinds each: passed through, and translated.

They install once into ``.cache/npm-clients`` (npm's registry or its mirror; no network call
beyond it: telemetry, update checks and other non-essential traffic are off). Where npm is missing
or the install fails they skip with a message, except in CI (``CI`` set), where that fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import LiveGateway, make_fake_provider, make_model, make_token

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / ".cache" / "npm-clients"
PACKAGES = ("@openai/codex", "@anthropic-ai/claude-code")
pytestmark = pytest.mark.django_db(transaction=True)


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI must run the real-client tests)")
    pytest.skip(f"{why}: install Node.js 20 and npm to run Codex CLI and Claude Code against the gateway")


@pytest.fixture(scope="session")
def clients() -> Path:
    """The folder whose node_modules/.bin holds ``codex`` and ``claude``."""
    bin_dir = CLIENTS / "node_modules" / ".bin"
    if (bin_dir / "codex").exists() and (bin_dir / "claude").exists():
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
    """A clean environment for a client: its own home, no proxy, nothing sent anywhere but the gateway."""
    keep = {name: os.environ[name] for name in ("PATH", "LANG", "TERM") if name in os.environ}
    return {**keep, "HOME": str(home), "NO_COLOR": "1", "CI": "1",
            # Claude Code: no telemetry, error reports, update checks or other non-essential traffic
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1"}


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


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
def test_claude_code_answers_through_the_gateway(clients: Path, live_gateway: LiveGateway, fakes: dict,
                                                 tmp_path: Path, kind: str) -> None:
    account = make_fake_provider(kind, fakes[kind])
    upstream = "claude-sonnet-4-5" if kind == "anthropic" else "gpt-4o-mini"
    for name in ("claude-sonnet-4-5", "claude-haiku-4-5"):  # Claude Code's main and small models
        make_model(name, (account, upstream), input_price_per_million="1", output_price_per_million="2")
    token = make_token("claude-code")
    env = {**quiet_env(tmp_path), "ANTHROPIC_BASE_URL": live_gateway.url, "ANTHROPIC_AUTH_TOKEN": token,
           "ANTHROPIC_MODEL": "claude-sonnet-4-5", "ANTHROPIC_DEFAULT_HAIKU_MODEL": "claude-haiku-4-5"}
    done = subprocess.run([str(clients / "claude"), "-p", "Reply with the word pong."], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "pong" in done.stdout, done.stdout[-2000:]
    assert [r.path for r in fakes[kind].requests], "the fake upstream was not called"
    live_gateway.flush_logs()
    from gateway.models import RequestLog

    assert RequestLog.objects.filter(endpoint="messages", status_code=200, token_name="claude-code").exists()
