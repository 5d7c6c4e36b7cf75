"""The seed's README (the Cloudflare AI Proxy Worker) `curl` examples, run verbatim with curl against a
live gateway on the default registry, with the X-AUTH-TOKEN header added (this gateway requires a token);
and with anonymous access on (GATEWAY_ANONYMOUS, the seed's "no token configured"), without any token."""

from __future__ import annotations

import shutil
import subprocess

import orjson
import pytest

from gateway.config.file import DEFAULTS, apply, load
from gateway.models import ProviderAccount
from tests.conftest import UPSTREAM_KEY, make_token
from tests.fakes.cloudflare_upstream import ACCOUNT_ID
from tests.openai_schema import assert_valid

SEED_HOST = "http://localhost:8787"

# Copied verbatim from the seed's README ("API Usage").
HEALTH = "curl http://localhost:8787/health"
MODEL_OPTIONS = "curl http://localhost:8787/v1/model-options"
CHAT = """curl -X POST http://localhost:8787/v1/chat/completions \\
  -H "Content-Type: application/json" \\
  -H "X-AUTH-TOKEN: your-token" \\
  -d '{
    "model": "@cf/meta/llama-4-scout-17b-16e-instruct",
    "messages": [
      {"role": "user", "content": "Hello, how are you?"}
    ],
    "temperature": 0.7
  }'"""
TOKENIZE = """curl -X POST http://localhost:8787/v1/tokenize \\
  -H "Content-Type: application/json" \\
  -d '{
    "input": "Count the tokens in this text",
    "model": "@cf/meta/llama-4-scout-17b-16e-instruct"
  }'"""
ROUTE_CHECK = 'curl "http://localhost:8787/v1/route-check?model=gpt-4"'

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl command")


@pytest.fixture
def seed(live_gateway, fakes: dict) -> dict:
    cloudflare = fakes["cloudflare"]
    apply(load(DEFAULTS), environ={"CLOUDFLARE_API_TOKEN": UPSTREAM_KEY, "CLOUDFLARE_ACCOUNT_ID": ACCOUNT_ID})
    ProviderAccount.objects.filter(name="cloudflare").update(base_url=cloudflare.base_url)
    return {"url": live_gateway.url, "token": make_token("seed"), "upstream": cloudflare}


def run(seed: dict, command: str) -> tuple[int, dict]:
    """Run a seed example in a shell against the live gateway, with the token in X-AUTH-TOKEN (when the seed
    has one)."""
    command = command.replace(SEED_HOST, seed["url"])
    if seed["token"] is not None:
        command = command.replace("X-AUTH-TOKEN: your-token", f"X-AUTH-TOKEN: {seed['token']}")
        if "X-AUTH-TOKEN" not in command:
            command += f' -H "X-AUTH-TOKEN: {seed["token"]}"'
    done = subprocess.run(["bash", "-c", command + " -sS -w '\\n%{http_code}'"], capture_output=True, text=True,
                          timeout=30, check=True)
    body, _, status = done.stdout.rpartition("\n")
    return int(status), orjson.loads(body)


def test_health(seed: dict) -> None:
    status, body = run(seed, HEALTH)
    assert status == 200 and body["status"] == "ok"
    assert body["providers"]["cloudflare"] == {"configured": True, "available": True}  # by kind, as the seed
    assert "accounts" not in body  # (an API token is not an operator)


def test_model_options(seed: dict) -> None:
    status, body = run(seed, MODEL_OPTIONS)
    options = {o["id"]: o for o in body["data"]}
    scout = options["@cf/meta/llama-4-scout-17b-16e-instruct"]
    assert status == 200 and scout["provider"] == "cloudflare" and scout["context_window"] == 131000
    assert body["default_model"] == "@cf/meta/llama-4-scout-17b-16e-instruct" and "gpt-4" in options


def test_chat_completion_on_workers_ai(seed: dict) -> None:
    status, body = run(seed, CHAT)
    assert status == 200 and body["choices"][0]["message"]["content"] == "Echo: Hello, how are you?"
    assert_valid("CreateChatCompletionResponse", body)
    sent = seed["upstream"].last
    assert sent.path.endswith(f"/accounts/{ACCOUNT_ID}/ai/run/@cf/meta/llama-4-scout-17b-16e-instruct")
    assert sent.json["temperature"] == 0.7 and sent.json["max_tokens"] == 4096  # the registry's default


def test_token_estimation(seed: dict) -> None:
    status, body = run(seed, TOKENIZE)
    assert status == 200 and body["tokens"] > 0 and body["estimated"] is True
    assert body["context_window"] == 131000 and body["remaining"] == 131000 - body["tokens"]


def test_provider_routing(seed: dict) -> None:
    status, body = run(seed, ROUTE_CHECK)
    assert status == 200 and body["matched"] == {"entry": "gpt-4", "rule": "exact"}
    assert body["deployments"][0]["provider_kind"] == "openai"


@pytest.fixture
def anonymous_seed(seed: dict, settings) -> dict:
    """The seed without a token configured: anonymous access on, and no token sent."""
    settings.GATEWAY = {"ANONYMOUS": True}
    return {**seed, "token": None}


def without_token(command: str) -> str:
    """The example without its X-AUTH-TOKEN line (the seed's chat example sends a placeholder token)."""
    return command.replace('  -H "X-AUTH-TOKEN: your-token" \\\n', "")


@pytest.mark.parametrize("command", [HEALTH, MODEL_OPTIONS, CHAT, TOKENIZE, ROUTE_CHECK])
def test_with_anonymous_access_every_example_works_without_a_token(anonymous_seed: dict, command: str) -> None:
    assert "X-AUTH-TOKEN" not in without_token(command)
    status, body = run(anonymous_seed, without_token(command))
    assert status == 200, body
    if command == CHAT:
        assert body["choices"][0]["message"]["content"] == "Echo: Hello, how are you?"
    elif command == TOKENIZE:
        assert body["tokens"] > 0 and body["context_window"] == 131000
    elif command == ROUTE_CHECK:
        assert body["matched"] == {"entry": "gpt-4", "rule": "exact"}
    elif command == MODEL_OPTIONS:
        assert "@cf/meta/llama-4-scout-17b-16e-instruct" in {o["id"] for o in body["data"]}


def test_with_anonymous_access_the_placeholder_token_is_still_a_wrong_token(anonymous_seed: dict) -> None:
    status, body = run(anonymous_seed, CHAT)  # verbatim: X-AUTH-TOKEN: your-token
    assert status == 401 and body["error"]["message"] == "Incorrect API key provided."


def test_without_anonymous_access_the_examples_without_a_token_get_401(seed: dict) -> None:
    for command in (MODEL_OPTIONS, without_token(CHAT), TOKENIZE, ROUTE_CHECK):
        status, body = run({**seed, "token": None}, command)
        assert status == 401 and body["error"]["code"] == "invalid_api_key"
