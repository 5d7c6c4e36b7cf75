"""The gunicorn worker: with DEBUG's access log on, a token in the query string is never logged."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import httpx
import pytest
from uvicorn.protocols.utils import get_path_with_query_string

from gateway.edge.worker import RedactQueryToken
from tests.servers import ServedGateway, manage


def access_record(path_with_query: str) -> logging.LogRecord:
    """A record as uvicorn's access logger makes it."""
    return logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                             ("127.0.0.1:5000", "POST", path_with_query, "1.1", 200), None)


def test_access_log_records_never_carry_a_query_token() -> None:
    record = access_record("/v1/chat/completions?x=1&auth_token=sk-gw-secret&y=2")
    assert RedactQueryToken().filter(record)
    line = record.getMessage()
    assert "sk-gw-secret" not in line and "auth_token=[redacted]&y=2" in line


@pytest.mark.parametrize("query", [
    b"auth%5Ftoken=sk-gw-secret", b"auth%5ftoken=sk-gw-secret", b"%61uth_token=sk-gw-secret",
    b"auth_token=decoy&auth%5Ftoken=sk-gw-secret", b"auth%5Ftoken=sk-gw-secret&auth_token=sk-gw-secret",
])
def test_nor_when_the_parameter_name_is_percent_encoded_or_repeated(query: bytes) -> None:
    path = get_path_with_query_string({"path": "/v1/models", "raw_path": b"/v1/models", "query_string": query})  # uvicorn's own rendering
    record = access_record(path)
    RedactQueryToken().filter(record)
    assert "sk-gw-secret" not in record.getMessage() and "[redacted]" in record.getMessage()


def test_the_served_gateways_debug_access_log_has_no_token(tmp_path: Path) -> None:
    """gateway_serve with DJANGO_DEBUG: gunicorn's access log (stdout) is on; the token never reaches it."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/gateway.sqlite3", "DJANGO_DEBUG": "1"}
    env.pop("REDIS_URL", None)
    manage(env, "migrate", "--noinput")
    token = manage(env, "gateway_token", "create", "--name", "debug").strip().splitlines()[-1]
    with ServedGateway(env, args=["--no-defaults"], start_timeout=30) as served:
        assert httpx.get(f"{served.url}/v1/models?auth%5Ftoken={token}").status_code == 200  # accepted: a secret
        unknown = httpx.get(f"{served.url}/v1/nothing?auth%5Ftoken={token}&auth_token={token}")
        assert unknown.status_code == 404 and token not in unknown.text
    output = served.output()  # (all of it: leaving the block stopped the server)
    assert "GET /v1/models?auth%5Ftoken=[redacted]" in output, output[-2000:]
    assert "/v1/nothing?auth%5Ftoken=[redacted]&auth_token=[redacted]" in output
    assert token not in output
