"""A token sent as ``?auth_token=`` (however its name is encoded) is redacted wherever the URL is written down."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from gateway.access.query_redaction import redact_query, redact_url

TOKEN = "sk-gw-SECRETsecret0123"

# Every spelling of the parameter's name that the parsers accepting the token decode to "auth_token".
ACCEPTED_NAMES = ["auth_token", "auth%5Ftoken", "auth%5ftoken", "%61uth_token", "%61%75%74%68%5F%74%6F%6B%65%6E"]


@pytest.mark.parametrize("name", ACCEPTED_NAMES)
def test_the_token_is_gone_however_the_parameter_name_is_percent_encoded(name: str) -> None:
    query = f"model=gpt-4o&{name}={TOKEN}&stream=true"
    assert dict(parse_qsl(query))["auth_token"] == TOKEN  # (what the gateway would accept)
    assert redact_query(query) == f"model=gpt-4o&{name}=[redacted]&stream=true"


def test_every_occurrence_is_redacted_and_the_rest_is_left_as_it_was() -> None:
    query = f"auth_token=first-{TOKEN}&a=1&auth%5Ftoken={TOKEN}&b=%20x+y&auth_token={TOKEN}2"
    assert redact_query(query) == "auth_token=[redacted]&a=1&auth%5Ftoken=[redacted]&b=%20x+y&auth_token=[redacted]"


@pytest.mark.parametrize("query", [
    f"AUTH_TOKEN={TOKEN}", f"+auth_token+={TOKEN}", f"a=1;auth_token={TOKEN}", f"auth_token={TOKEN}%26more",
    f"auth_token={TOKEN}=x", f"auth_token={TOKEN}#frag",
])
def test_it_errs_towards_hiding(query: str) -> None:
    assert TOKEN not in redact_query(query)


@pytest.mark.parametrize("query", ["", "a=1&b=2", "auth_token", "auth_token=", "x=auth_token", "auth_tokens=1",
                                   "auth%255Ftoken=kept"])
def test_other_parameters_are_not_touched(query: str) -> None:
    assert redact_query(query) == query


def test_redact_url_applies_to_the_query_only() -> None:
    assert redact_url(f"/v1/models?auth%5Ftoken={TOKEN}") == "/v1/models?auth%5Ftoken=[redacted]"
    assert redact_url("/v1/auth_token=x") == "/v1/auth_token=x"
    assert redact_url("127.0.0.1:5000") == "127.0.0.1:5000"
