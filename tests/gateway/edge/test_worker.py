"""The gunicorn worker: with DEBUG's access log on, a token in the query string is never logged."""

from __future__ import annotations

import logging

from gateway.edge.worker import RedactQueryToken


def test_access_log_records_never_carry_a_query_token() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "POST", "/v1/chat/completions?x=1&auth_token=sk-gw-secret&y=2",
                                "1.1", 200), None)
    assert RedactQueryToken().filter(record)
    line = record.getMessage()
    assert "sk-gw-secret" not in line and "auth_token=[redacted]&y=2" in line
