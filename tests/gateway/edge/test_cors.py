"""CORS, as the seed promises for browser clients: any origin by default, preflight answered."""

from __future__ import annotations

import httpx


def test_preflight_for_chat_completions_allows_the_auth_headers(openai_setup: dict) -> None:
    response = httpx.options(f"{openai_setup['gateway'].v1}/chat/completions", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, x-auth-token, x-session-id, content-type"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", "https://app.example")
    allowed = response.headers["access-control-allow-headers"].lower()
    assert all(h in allowed for h in ("authorization", "x-auth-token", "x-session-id"))


def test_hot_path_responses_carry_cors_and_expose_the_request_id(openai_setup: dict) -> None:
    response = httpx.post(f"{openai_setup['gateway'].v1}/chat/completions", headers={
        "Origin": "https://app.example", "X-AUTH-TOKEN": openai_setup["token"]},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    exposed = response.headers["access-control-expose-headers"]
    assert "x-request-id" in exposed and "retry-after" in exposed and "x-ratelimit-remaining-requests" in exposed


def test_health_answers_cross_origin_too(live_gateway) -> None:
    response = httpx.get(f"{live_gateway.url}/health", headers={"Origin": "https://app.example"})
    assert response.status_code == 200 and response.headers["access-control-allow-origin"] == "*"
