"""/v1/openapi.json and /v1/docs: the gateway's own OpenAPI description and its offline docs page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from gateway.edge.app import hot_routes
from gateway.models import ModelEntry
from proxy_site import urls
from tests.conftest import UPSTREAM_KEY, make_model, make_provider, make_token

pytestmark = pytest.mark.django_db

# Served by Django but not part of the API: the admin's HTML, the root's redirect to it, the docs page, and
# Prometheus' scrape (its text format; off unless GATEWAY_METRICS, see README "Metrics and logs").
NOT_API = {"/", "/v1/docs", "/metrics"}
ERROR_FIELDS = {"message", "type", "param", "code"}
# The Messages API's endpoints answer errors in that API's envelope ({"type": "error", "error": {"type", "message"}}).
MESSAGES_PATHS = {"/v1/messages", "/v1/messages/count_tokens"}


def error_schema(path: str) -> str:
    return "#/components/schemas/" + ("MessagesError" if path in MESSAGES_PATHS else "Error")


@pytest.fixture
def document(client: Client) -> dict[str, Any]:
    response = client.get("/v1/openapi.json")
    assert response.status_code == 200
    return response.json()


def served_operations() -> set[tuple[str, str]]:
    """(path in OpenAPI's form, method) of every endpoint the gateway serves, from its URLs and hot path."""
    served = {(path, view.method.lower()) for path, view in hot_routes().items()}
    for pattern in urls.urlpatterns:
        if isinstance(pattern, URLResolver):  # the admin
            continue
        assert isinstance(pattern, URLPattern)
        path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))
        if path in NOT_API or pattern.name == "not-found" or hasattr(pattern.callback, "hot_view"):  # hot: above
            continue
        view_class = getattr(pattern.callback, "view_class", None)
        methods = [m for m in ("get", "post", "put", "patch", "delete") if hasattr(view_class, m)] if view_class else ["get"]
        served |= {(path, method) for method in methods}
    return served


def documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, item in document["paths"].items() for method in item}


def resolved(schema: Any, document: dict[str, Any]) -> Any:
    """The schema with every local $ref replaced by what it points to."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            name = schema["$ref"].removeprefix("#/components/schemas/")
            return resolved(document["components"]["schemas"][name], document)
        return {key: resolved(value, document) for key, value in schema.items()}
    if isinstance(schema, list):
        return [resolved(item, document) for item in schema]
    return schema


def assert_matches(document: dict[str, Any], path: str, method: str, response: httpx.Response) -> None:
    """The live response's status is documented for this operation, and its JSON body fits the schema."""
    responses = document["paths"][path][method]["responses"]
    assert str(response.status_code) in responses, (path, method, response.status_code)
    schema = responses[str(response.status_code)]["content"]["application/json"]["schema"]
    OAS30Validator(resolved(schema, document)).validate(response.json())


def test_the_description_is_valid_openapi_3_and_needs_no_token(client: Client) -> None:
    response = client.get("/v1/openapi.json")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    document = response.json()
    assert document["openapi"].startswith("3.")
    validate(document)  # raises on any violation of the OpenAPI specification
    # A wrong token does not stand in the way of reading the description either.
    assert client.get("/v1/openapi.json", HTTP_AUTHORIZATION="Bearer wrong").status_code == 200


def test_every_endpoint_the_gateway_serves_is_documented_and_nothing_else(document: dict[str, Any]) -> None:
    served = served_operations()
    assert ("/v1/chat/completions", "post") in served and ("/v1/models/{model}", "get") in served
    assert documented_operations(document) == served


def test_every_v1_operation_that_needs_a_token_documents_401_with_the_error_envelope(document: dict[str, Any]) -> None:
    checked = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if not path.startswith("/v1/") or path == "/v1/openapi.json":
                continue
            assert {"bearerAuth": []} in operation["security"], (path, method)
            assert operation["responses"]["401"]["content"]["application/json"]["schema"] == {
                "$ref": error_schema(path)}, (path, method)
            checked += 1
    assert checked == len([op for op in served_operations() if op[0].startswith("/v1/")]) - 1
    error = resolved({"$ref": "#/components/schemas/Error"}, document)
    assert set(error["properties"]["error"]["properties"]) == ERROR_FIELDS
    messages_error = resolved({"$ref": "#/components/schemas/MessagesError"}, document)
    assert set(messages_error["properties"]) == {"type", "error"}
    assert set(messages_error["properties"]["error"]["properties"]) == {"type", "message"}


def test_every_error_response_has_the_error_envelope(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if int(status) < 400 or path == "/health":  # /health answers 503 with its own body
                    continue
                assert response["content"]["application/json"]["schema"]["$ref"] == error_schema(path), \
                    (path, method, status)


def test_the_inference_endpoints_document_their_errors_and_streaming(document: dict[str, Any]) -> None:
    for path in hot_routes():
        operation = document["paths"][path]["post"]
        assert {"400", "401", "403", "404", "413", "429", "502", "503", "504"} <= set(operation["responses"]), path
        assert "Retry-After" in operation["responses"]["429"]["headers"]
        request_schema = resolved(operation["requestBody"]["content"]["application/json"]["schema"], document)
        assert request_schema["additionalProperties"] is True, path  # unknown OpenAI fields pass through
        assert "model" in request_schema["properties"] and "provider" in request_schema["properties"]
    streamed = {path for path in hot_routes()
                if "text/event-stream" in document["paths"][path]["post"]["responses"]["200"]["content"]}
    assert streamed == {"/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages"}


def test_the_four_token_forms_are_documented_as_alternative_security_schemes(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert (schemes["xAuthToken"]["in"], schemes["xAuthToken"]["name"]) == ("header", "X-AUTH-TOKEN")
    assert (schemes["authTokenQuery"]["in"], schemes["authTokenQuery"]["name"]) == ("query", "auth_token")
    security = document["paths"]["/v1/models"]["get"]["security"]
    assert security == [{"bearerAuth": []}, {"xAuthToken": []}, {"xApiKey": []}, {"authTokenQuery": []}]  # any one
    assert (schemes["xApiKey"]["in"], schemes["xApiKey"]["name"]) == ("header", "X-API-Key")


def test_the_query_token_is_not_documented_when_it_is_switched_off(client: Client, settings: Any) -> None:
    settings.GATEWAY = {"ALLOW_QUERY_TOKEN": False}
    document = client.get("/v1/openapi.json").json()
    assert "authTokenQuery" not in document["components"]["securitySchemes"]
    assert document["paths"]["/v1/chat/completions"]["post"]["security"] == [
        {"bearerAuth": []}, {"xAuthToken": []}, {"xApiKey": []}]


def test_with_anonymous_access_no_token_is_documented_as_one_more_way_in(client: Client, settings: Any) -> None:
    settings.GATEWAY = {"ANONYMOUS": True}
    document = client.get("/v1/openapi.json").json()
    assert document["paths"]["/v1/chat/completions"]["post"]["security"][-1] == {}
    assert document["paths"]["/v1/models"]["get"]["security"][-1] == {}
    validate(document)


def test_the_documented_capabilities_are_the_registrys(document: dict[str, Any]) -> None:
    capabilities = document["components"]["schemas"]["Capabilities"]["properties"]
    assert set(capabilities) == set(ModelEntry.CAPABILITIES)


def test_the_docs_page_loads_only_assets_the_gateway_serves(client: Client) -> None:
    response = client.get("/v1/docs")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "://" not in html  # no CDN, no online validator: nothing outside this server
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets) and any(a.endswith(".css") for a in assets)
    assert all(a.startswith("/static/") for a in assets), assets
    assert '"/v1/openapi.json"' in html and '"validatorUrl": null' in html


def test_the_docs_page_and_its_assets_load_from_the_running_gateway(live_gateway: Any) -> None:
    html = httpx.get(f"{live_gateway.url}/v1/docs").text
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) >= 3
    for asset in assets:
        response = httpx.get(live_gateway.url + asset)
        assert response.status_code == 200, asset
        assert response.content == Path(finders.find(asset.removeprefix("/static/"))).read_bytes(), asset
    bundle = next(a for a in assets if a.endswith("swagger-ui-bundle.js"))
    assert "javascript" in httpx.get(live_gateway.url + bundle).headers["content-type"]
    assert httpx.get(f"{live_gateway.url}/v1/openapi.json").json()["paths"]


def test_live_answers_match_the_description(openai_setup: dict[str, Any]) -> None:
    """Real responses of every documented operation (success and errors) fit the documented schemas."""
    gateway, token = openai_setup["gateway"], openai_setup["token"]
    document = httpx.get(f"{gateway.url}/v1/openapi.json").json()
    auth = {"Authorization": f"Bearer {token}"}
    make_model("text-embedding-3-small", (openai_setup["account"], "text-embedding-3-small"), embeddings=True)
    make_model("nowhere", (make_provider("unreachable", base_url="http://127.0.0.1:9/v1"), "x"))
    ModelEntry.objects.create(name="undeployed")
    narrow = {"X-AUTH-TOKEN": make_token("narrow", allowed_models="nowhere")}
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        calls = [
            ("/v1/models", "get", http.get("/v1/models", headers=auth)),
            ("/v1/models", "get", http.get("/v1/models")),
            ("/v1/models/{model}", "get", http.get("/v1/models/gpt-4o-mini", headers=auth)),
            ("/v1/models/{model}", "get", http.get("/v1/models/unknown", headers=auth)),
            ("/v1/model-options", "get", http.get("/v1/model-options", headers=auth)),
            ("/v1/route-check", "get", http.get("/v1/route-check", params={"model": "gpt-4o-mini"}, headers=auth)),
            ("/v1/route-check", "get", http.get("/v1/route-check", params={"model": "gpt-4o-mini"}, headers=narrow)),
            ("/v1/route-check", "get", http.get("/v1/route-check", headers=auth)),
            ("/v1/tokenize", "post", http.post("/v1/tokenize", json={"model": "gpt-4o-mini", "input": ["a", "b"]},
                                               headers=auth)),
            ("/v1/tokenize", "post", http.post("/v1/tokenize", json={"model": "gpt-4o-mini"}, headers=auth)),
            ("/v1/chat/completions", "post", http.post("/v1/chat/completions", json=chat, headers=auth)),
            ("/v1/chat/completions", "post", http.post("/v1/chat/completions", json={**chat, "model": "nope"},
                                                       headers=auth)),
            ("/v1/chat/completions", "post", http.post("/v1/chat/completions", json={**chat, "model": "nowhere"},
                                                       headers=auth)),
            ("/v1/chat/completions", "post", http.post("/v1/chat/completions", json={**chat, "model": "undeployed"},
                                                       headers=auth)),
            ("/v1/chat/completions", "post", http.post("/v1/chat/completions", content=b"{", headers=auth)),
            ("/v1/completions", "post", http.post("/v1/completions", json={"model": "gpt-4o-mini", "prompt": "Hi"},
                                                  headers=auth)),
            ("/v1/embeddings", "post", http.post("/v1/embeddings", headers=auth, json={
                "model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": "base64"})),
            ("/v1/embeddings", "post", http.post("/v1/embeddings", headers=auth, json={
                "model": "text-embedding-3-small", "input": "a", "encoding_format": "float"})),
            ("/health", "get", http.get("/health")),
        ]
        streamed = http.post("/v1/chat/completions", json={**chat, "stream": True}, headers=auth)
    statuses = [response.status_code for _, _, response in calls]
    assert statuses == [200, 401, 200, 404, 200, 200, 403, 400, 200, 400, 200, 404, 502, 503, 400, 200, 200, 200, 200]
    for path, method, response in calls:
        assert_matches(document, path, method, response)
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert "text/event-stream" in document["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]


def test_generating_the_description_raises_no_warning(tmp_path: Path) -> None:
    """drf-spectacular warns about a view it cannot describe (no serializer, unknown auth): none may be left."""
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "openapi.yaml"))
    assert "/v1/chat/completions:" in (tmp_path / "openapi.yaml").read_text()


def test_request_bodies_the_description_allows_are_the_ones_the_gateway_accepts(openai_setup: dict[str, Any]) -> None:
    gateway, token = openai_setup["gateway"], openai_setup["token"]
    document = httpx.get(f"{gateway.url}/v1/openapi.json").json()
    user = {"role": "user", "content": "Hi"}
    cases = [
        ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [user], "seed": 1, "unknown_field": 1}),
        ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": []}),
        ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [{"role": "user"}]}),
        ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [user], "stream_options": {"include_usage": True}}),
        ("/v1/chat/completions", {"model": " ", "messages": [user]}),
        ("/v1/completions", {"model": "gpt-4o-mini", "prompt": [[1, 2], [3]]}),
        ("/v1/completions", {"model": "gpt-4o-mini", "prompt": [[]]}),
        ("/v1/embeddings", {"model": "gpt-4o-mini", "input": ["a", ""]}),
        ("/v1/tokenize", {"model": "gpt-4o-mini", "input": "a"}),
        ("/v1/tokenize", {"model": "gpt-4o-mini", "input": "a", "messages": [user]}),
    ]
    verdicts = []
    with httpx.Client(base_url=gateway.url, headers={"X-AUTH-TOKEN": token}, timeout=10) as http:
        for path, body in cases:
            schema = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
            valid = OAS30Validator(resolved(schema, document)).is_valid(body)
            verdicts.append((path, valid, http.post(path, json=body).status_code < 400))
    assert [valid for _, valid, _ in verdicts] == [True, False, False, False, False, True, False, False, True, False]
    assert all(valid == accepted for _, valid, accepted in verdicts), verdicts


def request_examples(document: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(path, example name, body) of every request-body example in the description."""
    return [(path, name, example["value"])
            for path, item in document["paths"].items() for operation in item.values()
            for media in operation.get("requestBody", {}).get("content", {}).values()
            for name, example in media.get("examples", {}).items()]


def test_every_request_body_has_examples_and_each_fits_its_schema(document: dict[str, Any]) -> None:
    examples = request_examples(document)
    assert {path for path, _, _ in examples} == {path for path, item in document["paths"].items()
                                                 for operation in item.values() if "requestBody" in operation}
    for path, name, body in examples:
        schema = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert OAS30Validator(resolved(schema, document)).is_valid(body), (path, name)


def test_every_request_example_is_accepted_by_the_gateway_with_the_default_registry(
        live_gateway: Any, fakes: dict[str, Any]) -> None:
    """What Swagger's "Try it out" sends (the first example) and every other example: a 200 with the
    registry the gateway starts with, its providers pointed at the fakes."""
    from gateway.models import ProviderAccount

    call_command("gateway_apply", "--defaults", verbosity=0)
    for account in ProviderAccount.objects.all():
        fake = fakes[account.kind]
        account.base_url = fake.base_url
        account.set_api_key(UPSTREAM_KEY)
        if account.kind == "cloudflare":
            account.options = {"account_id": fake.account_id}
        account.save()
    document = httpx.get(f"{live_gateway.url}/v1/openapi.json").json()
    auth = {"Authorization": f"Bearer {make_token()}"}
    with httpx.Client(base_url=live_gateway.url, headers=auth, timeout=10) as http:
        for path, name, body in request_examples(document):
            response = http.post(path, json=body)
            assert response.status_code == 200, (path, name, response.text)
            streamed = response.headers["content-type"].startswith("text/event-stream")
            assert streamed == bool(body.get("stream")), (path, name)
            if streamed and path == "/v1/responses":  # Responses streams end with their last event, no [DONE]
                assert response.text.rstrip().splitlines()[-2] == "event: response.completed", (path, name)
            elif streamed:
                end = 'event: message_stop\ndata: {"type":"message_stop"}' if path in MESSAGES_PATHS else "data: [DONE]"
                assert response.text.rstrip().endswith(end), (path, name, response.text)


def test_a_stream_is_described_event_by_event(document: dict[str, Any]) -> None:
    """OpenAPI 3.0 cannot describe a stream item by item: the text/event-stream schema is one event (as
    3.2's itemSchema, and as schemathesis reads it), a ``data`` field holding a JSON object or [DONE]."""
    for path in ("/v1/chat/completions", "/v1/completions"):
        event = document["paths"][path]["post"]["responses"]["200"]["content"]["text/event-stream"]["schema"]
        assert event["type"] == "object" and event["required"] == ["data"]
        data = re.compile(event["properties"]["data"]["pattern"])
        assert data.search("[DONE]") and data.search('{"id": "chatcmpl-1"}') and not data.search("DONE")
