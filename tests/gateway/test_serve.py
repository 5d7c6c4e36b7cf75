"""The README's way to run the gateway: gunicorn with uvicorn workers, configured from the command line."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.servers import ServedGateway, manage, sqlite_gateway


@pytest.fixture
def served_gateway(tmp_path: Path, fake_openai) -> Iterator[dict]:
    # Rows are flushed every 60 s here, so the ones we find were written by the graceful shutdown.
    env, token = sqlite_gateway(tmp_path, fake_openai.base_url, "served", GATEWAY_LOG_FLUSH_SECONDS="60")
    with ServedGateway(env, workers=2, start_timeout=30) as served:
        yield {"url": served.url, "token": token, "env": env, "served": served}


def test_gateway_serve_answers_the_sdk_and_flushes_logs_on_shutdown(served_gateway: dict) -> None:
    client = openai.OpenAI(base_url=f"{served_gateway['url']}/v1", api_key=served_gateway["token"], max_retries=0)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "Echo: hi"
    streamed = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "yo"}],
                                              stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "Echo: yo"
    output = served_gateway["served"].stop()  # SIGTERM; it must end within 30 s
    assert "Next steps" in output and "createsuperuser" in output
    count = manage(served_gateway["env"], "shell", "-c",
                   "from gateway.models import RequestLog; print(RequestLog.objects.filter(status_code=200).count())")
    assert count.strip().splitlines()[-1] == "2"


@pytest.mark.django_db
@pytest.mark.parametrize(("bind", "hint"), [("0.0.0.0:8000", True), ("127.0.0.1:8000", False), ("[::1]:8000", False)])
def test_serving_beyond_loopback_in_local_mode_says_which_variable_to_set(bind: str, hint: bool) -> None:
    from io import StringIO

    from django.test import override_settings

    from gateway.management.commands.gateway_serve import Command

    out = StringIO()
    with override_settings(ALLOWED_HOSTS=["localhost", "127.0.0.1", "[::1]"]):
        Command(stdout=out).next_steps(bind)
    assert ("set DJANGO_ALLOWED_HOSTS" in out.getvalue()) is hint


def test_a_first_start_says_it_migrated_and_a_later_one_that_nothing_was_left(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/fresh.sqlite3"}
    env.pop("REDIS_URL", None)
    run = "from gateway.management.commands.gateway_serve import Command; Command().migrate()"
    first = manage(env, "shell", "-c", run)
    assert "Database migrated: applied" in first and "up to date" not in first
    assert "Database is up to date (no migrations to apply)." in manage(env, "shell", "-c", run)


@pytest.mark.django_db
def test_serving_with_anonymous_access_says_so_and_its_identity_is_no_issued_token(settings) -> None:
    from io import StringIO

    from gateway.management.commands.gateway_serve import Command
    from gateway.models import ApiToken

    ApiToken.anonymous()
    out = StringIO()
    Command(stdout=out).next_steps("127.0.0.1:8000")
    assert "Issue an API token" in out.getvalue() and "Anonymous access is on" not in out.getvalue()
    settings.GATEWAY = {"ANONYMOUS": True}
    out = StringIO()
    Command(stdout=out).next_steps("127.0.0.1:8000")
    assert "Anonymous access is on (GATEWAY_ANONYMOUS)" in out.getvalue() and "anyone who can reach" in out.getvalue()
