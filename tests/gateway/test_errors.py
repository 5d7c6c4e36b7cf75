"""One error renderer: every failure becomes OpenAI's envelope with the right status and headers."""

from __future__ import annotations

import orjson
from django.http import Http404
from rest_framework import exceptions

from gateway.errors import GatewayError, error_event, method_not_allowed, render
from providers.base import ProviderError


def test_a_provider_error_keeps_its_status_fields_and_retry_after() -> None:
    status, headers, payload = render(ProviderError(429, "slow down", "rate_limit_error", "rate_limit_exceeded",
                                                    retry_after="3"))
    assert (status, headers) == (429, {"Retry-After": "3"})
    assert payload == {"error": {"message": "slow down", "type": "rate_limit_error", "param": None,
                                 "code": "rate_limit_exceeded"}}


def test_401_carries_the_bearer_challenge_and_gateway_errors_their_own_headers() -> None:
    assert render(GatewayError(401, "no", "invalid_request_error", "invalid_api_key"))[1] == {
        "WWW-Authenticate": 'Bearer realm="api"'}
    assert render(method_not_allowed("GET", "POST"))[:2] == (405, {"Allow": "POST"})


def test_drf_exceptions_map_to_openai_types_with_the_field_as_param() -> None:
    status, _, payload = render(exceptions.ValidationError({"input": ["must be a string"]}))
    assert status == 400 and payload["error"] == {"message": "must be a string", "type": "invalid_request_error",
                                                  "param": "input", "code": None}
    status, headers, payload = render(exceptions.Throttled(wait=4.6))
    assert (status, headers["Retry-After"], payload["error"]["type"]) == (429, "5", "rate_limit_error")


def test_anything_else_is_a_500_that_tells_nothing_of_its_cause() -> None:
    status, headers, payload = render(RuntimeError("secret internals at /srv/app.py"))
    assert status == 500 and headers == {}
    assert "secret" not in payload["error"]["message"] and payload["error"]["type"] == "server_error"
    assert render(Http404("x"))[0] == 404


def test_a_stream_error_event_is_the_same_payload_as_one_sse_event() -> None:
    error = ProviderError(502, "upstream broke", "upstream_error", "upstream_stream_failed")
    event = error_event(error)
    assert event.startswith(b"data: ") and event.endswith(b"\n\n")
    assert orjson.loads(event[6:]) == render(error)[2]


def test_djangos_suspicious_operations_are_400s_and_a_too_big_body_a_413() -> None:
    from django.core.exceptions import DisallowedHost, RequestDataTooBig, TooManyFieldsSent

    for exc in (TooManyFieldsSent("x"), DisallowedHost("evil.example")):
        status, _, payload = render(exc)
        assert status == 400 and payload["error"]["code"] == "bad_request" and "evil" not in str(payload)
    assert render(RequestDataTooBig("x"))[0] == 413
