"""The production deployment files (Dockerfile, .dockerignore, compose.yaml, deploy/): their structure,
checked without Docker (CI also runs `docker compose config -q` where Docker's compose is installed),
and the container's health check against the running gateway."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.servers import free_port
from tests.settings_env import variables_read

ROOT = Path(__file__).resolve().parent.parent
# Variables the gateway's containers may be given that settings.py does not read: another component does.
READ_ELSEWHERE = {"FORWARDED_ALLOW_IPS": "gunicorn: the proxies whose X-Forwarded-* headers uvicorn trusts"}
SECRETS = ("DJANGO_SECRET_KEY", "GATEWAY_ENCRYPTION_KEYS", "POSTGRES_PASSWORD")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) per instruction, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def gateways(compose: dict) -> dict[str, dict]:
    return {name: service for name, service in compose["services"].items() if name.startswith("gateway-")}


def test_compose_runs_two_gateways_a_one_shot_migration_postgres_redis_and_a_load_balancer(compose: dict) -> None:
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "nginx"} <= set(services) and len(gateways(compose)) >= 2
    for name, service in [*gateways(compose).items(), ("migrate", services["migrate"])]:
        assert service["build"] == "." and service["image"] == services["migrate"]["image"], name


def test_every_gateway_container_gets_the_same_environment(compose: dict) -> None:
    environments = [service["environment"] for service in [*gateways(compose).values(), compose["services"]["migrate"]]]
    assert all(env == environments[0] for env in environments)
    env = environments[0]
    assert {"DATABASE_URL", "REDIS_URL", "GATEWAY_ENCRYPTION_KEYS", "DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS"} <= set(env)
    assert env["DJANGO_DEBUG"] == "false"
    assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"]
    assert env["REDIS_URL"].startswith("redis://redis:6379/")


def test_compose_sets_only_variables_the_settings_or_gunicorn_read(compose: dict) -> None:
    read = variables_read()
    for name, service in [*gateways(compose).items(), ("migrate", compose["services"]["migrate"])]:
        unknown = set(service["environment"]) - read - set(READ_ELSEWHERE)
        assert not unknown, (name, unknown)


def test_no_secret_is_written_in_compose_yaml(compose: dict) -> None:
    text = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    env = compose["services"]["migrate"]["environment"]
    for secret in ("DJANGO_SECRET_KEY", "GATEWAY_ENCRYPTION_KEYS"):
        assert re.fullmatch(rf"\$\{{{secret}:\?[^}}]+\}}", env[secret]), secret  # required, from .env
    assert "${POSTGRES_PASSWORD:?" in env["DATABASE_URL"]
    assert compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    example = (ROOT / "deploy" / "env.example").read_text(encoding="utf-8")
    for secret in SECRETS:
        assert re.search(rf"^{secret}=$", example, re.MULTILINE), f"{secret} must be empty in env.example"
        assert secret in text
    assert "/.env" in (ROOT / ".gitignore").read_text().splitlines()


def test_only_the_one_shot_service_migrates_and_the_gateways_wait_for_it(compose: dict) -> None:
    services = compose["services"]
    assert "--prepare-only" in services["migrate"]["command"] and services["migrate"]["restart"] == "no"
    for name, service in gateways(compose).items():
        assert "--no-migrate" in service["command"] and "--no-defaults" in service["command"], name
        assert service["depends_on"] == {"migrate": {"condition": "service_completed_successfully"},
                                         "postgres": {"condition": "service_healthy"},
                                         "redis": {"condition": "service_healthy"}}, name
    assert services["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert services["nginx"]["depends_on"] == {name: {"condition": "service_healthy"} for name in gateways(compose)}


def test_every_long_running_service_has_a_health_check(compose: dict) -> None:
    for name, service in compose["services"].items():
        if name != "migrate":
            assert service["healthcheck"]["test"][0] == "CMD" and not service["healthcheck"].get("disable"), name
    for service in gateways(compose).values():
        assert service["healthcheck"]["test"] == ["CMD", "python", "deploy/healthcheck.py"]
        assert service["stop_grace_period"]  # longer than gunicorn's graceful timeout: streams finish


def test_the_load_balancer_sends_to_every_gateway_and_keeps_streams_flowing(compose: dict) -> None:
    conf = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    servers = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", conf, re.MULTILINE)
    assert sorted(servers) == sorted((name, "8000") for name in gateways(compose))
    for directive in ("proxy_buffering off;", "proxy_http_version 1.1;", "proxy_set_header X-Forwarded-Proto $scheme;",
                      "proxy_set_header X-Forwarded-For $remote_addr;", "proxy_set_header Host $host;"):
        assert directive in conf, directive
    assert int(re.search(r"proxy_read_timeout (\d+)s;", conf)[1]) >= 600
    # Above the gateway's own body limit, so that the gateway answers 413 in OpenAI's format.
    assert int(re.search(r"client_max_body_size (\d+)m;", conf)[1]) * 2**20 > 20 * 2**20
    mounts = compose["services"]["nginx"]["volumes"]
    assert "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in mounts


def test_the_dockerfile_builds_a_non_root_production_image(dockerfile: list[tuple[str, str]]) -> None:
    instructions = [name for name, _ in dockerfile]
    assert dockerfile[0] == ("FROM", "python:3.11-slim")
    user = [args for name, args in dockerfile if name == "USER"]
    assert user and user[-1] not in ("root", "0")
    runs = [args for name, args in dockerfile if name == "RUN"]
    assert not any("[test]" in run or "'.[" in run for run in runs)  # no test extras in the image
    collect = next(i for i, (name, args) in enumerate(dockerfile) if name == "RUN" and "collectstatic" in args)
    assert "DJANGO_DEBUG=false" in dockerfile[collect][1]  # production's hashed files
    assert instructions.index("USER") > collect  # collected as root: read-only to the gateway's user
    healthcheck = next(args for name, args in dockerfile if name == "HEALTHCHECK")
    assert 'CMD ["python", "deploy/healthcheck.py"]' in healthcheck
    assert ("EXPOSE", "8000") in dockerfile
    env = " ".join(args for name, args in dockerfile if name == "ENV")
    assert "GATEWAY_BIND=0.0.0.0:8000" in env and "DJANGO_DEBUG=false" in env
    entrypoint = next(args for name, args in dockerfile if name == "ENTRYPOINT")
    assert entrypoint.startswith('["python", "manage.py", "gateway_serve"') and "--no-collectstatic" in entrypoint


def test_the_image_leaves_out_local_state_secrets_and_tests() -> None:
    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".git", ".venv", ".secret_key", ".env", "deploy/tls", "tests", "bench", "build", "*.sqlite3"} <= ignored
    assert "README.md" not in ignored and "deploy" not in ignored  # pyproject's readme; the health check


def healthcheck(port: int, allowed_hosts: str) -> int:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GATEWAY_BIND": f"0.0.0.0:{port}",
           "DJANGO_ALLOWED_HOSTS": allowed_hosts}
    return subprocess.run([sys.executable, "deploy/healthcheck.py"], cwd=ROOT, env=env, capture_output=True,
                          timeout=30).returncode


def test_the_health_check_passes_on_a_healthy_gateway_and_fails_otherwise(live_gateway) -> None:
    port = int(live_gateway.url.rpartition(":")[2])
    assert healthcheck(port, "localhost,gw.example.com") == 0
    assert healthcheck(port, "") == 0  # (no names: localhost)
    assert healthcheck(port, "gw.example.com") == 1  # a name the gateway (loopback only here) refuses: 400
    assert healthcheck(free_port(), "localhost") == 1  # nothing listening
