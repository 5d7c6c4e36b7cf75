"""Fuzzing the API with schemathesis: every operation of ``GET /v1/openapi.json``, run against the live
gateway (uvicorn on a socket) whose models are served by the fake upstreams of tests/fakes/.

Not part of the default run (the README's ~40 s test command): it is collected only with ``--fuzz``,
as ``.ci/run`` does: ``FUZZ_MAX_EXAMPLES=100 pytest --fuzz tests/test_fuzz.py`` (about a minute on
2 cores). ``FUZZ_MAX_EXAMPLES`` (default 60) bounds the examples per operation and phase. The run
is derandomized (the same requests every time, so CI does not flake and a failure replays);
``FUZZ_SEED=<n>`` explores other requests.

The description is fuzzed as the gateway serves it, with one change: ``model`` is narrowed to the
names registered below (an ``enum``, required) and ``provider`` left out, so that the requests reach
the providers instead of being 404s; ``map_body`` spreads them evenly over the models. Every
response must pass these checks:

- ``not_a_server_error``: no 5xx, whatever the request (the fakes answer garbage with a 400, as a
  real provider does, see ``Lenient``);
- ``status_code_conformance``, ``content_type_conformance``, ``response_headers_conformance``,
  ``response_schema_conformance``: the status, media type, headers and body are documented (an SSE
  stream is checked event by event against the documented event schema);
- ``error_envelope``: every error is OpenAI's ``{"error": {"message", "type", "param", "code"}}``;
- ``sse_stream``: every event of a stream carries a JSON chunk of the operation's kind or the error
  envelope, and the stream ends with ``data: [DONE]`` or an error event;
- ``described_bodies_pass_validation``: a body the description allows passes the gateway's own
  checks (the description states the rules the gateway enforces).

Then ``test_the_fuzzed_requests_reached_every_model`` checks that every model answered some of them.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from openapi_schema_validator import OAS30Validator
from schemathesis import checks as builtin
from schemathesis.specs.openapi import checks as openapi

from gateway.inference import operations, validation
from gateway.inference.operations import Operation
from providers.base import ProviderError
from tests.conftest import UPSTREAM_KEY, make_fake_provider, make_model, make_token
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.cloudflare_upstream import FakeCloudflare
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import FakeServer

pytestmark = [pytest.mark.fuzz]

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "60"))
SEED = os.environ.get("FUZZ_SEED", "")

# Public model name -> (provider kind, upstream model). One chat model per provider kind (two
# for OpenAI's wire format: kind openai and openai_compatible), the embedding models of the kinds
# that have them.
CHAT = {
    "gpt-4o-mini": ("openai", "gpt-4o-mini"),
    "local-llama": ("openai_compatible", "gpt-4o-mini"),
    "@cf/meta/llama-4-scout-17b-16e-instruct": ("cloudflare", "@cf/meta/llama-4-scout-17b-16e-instruct"),
    "gemini-2.5-flash": ("gemini", "gemini-2.5-flash"),
    "claude-sonnet-4-5": ("anthropic", "claude-sonnet-4-20250514"),
}
EMBEDDINGS = {
    "text-embedding-3-small": ("openai", "text-embedding-3-small"),
    "@cf/baai/bge-base-en-v1.5": ("cloudflare", "@cf/baai/bge-base-en-v1.5"),
    "gemini-embedding-001": ("gemini", "gemini-embedding-001"),
}
FAKES = {"openai": FakeOpenAI, "cloudflare": FakeCloudflare, "gemini": FakeGemini, "anthropic": FakeAnthropic}
ERROR_FIELDS = {"message", "type", "param", "code"}
CHUNK_OBJECTS = {"/v1/chat/completions": "chat.completion.chunk", "/v1/completions": "text_completion"}
# How a Responses stream ends: its last event (there is no [DONE]).
RESPONSES_ENDS = {"response.completed", "response.incomplete", "response.failed", "error"}
# The Messages API's paths: errors in its envelope, streams of named events ending with message_stop.
MESSAGES_PATHS = {"/v1/messages", "/v1/messages/count_tokens"}


class Lenient(FakeServer):
    """A fake that answers a request it cannot read (its handler raised) with a 400, as a real provider
    does, instead of aiohttp's 500 (which the gateway rightly reports as a 502). The fakes are written
    for well-formed requests; the fuzzer sends everything the description allows and more."""

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await super()._record(request, handler)
        except Exception as exc:  # the fake's own limit, not the gateway's
            message = f"The fake upstream could not read this request ({type(exc).__name__}: {exc})"[:300]
            return web.Response(status=400, content_type="application/json", body=orjson.dumps(
                {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}))


@pytest.fixture(scope="module")
def lenient_fakes() -> Any:
    servers = {kind: type(f"Lenient{cls.__name__}", (Lenient, cls), {})(UPSTREAM_KEY) for kind, cls in FAKES.items()}
    for server in servers.values():
        server.start()
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def gateway(live_gateway: Any, lenient_fakes: dict[str, FakeServer]) -> dict[str, str]:
    """The live gateway with the models above, each served by its fake, and a token for all of them."""
    accounts = {kind: make_fake_provider(kind, fake) for kind, fake in lenient_fakes.items()}
    accounts["openai_compatible"] = make_fake_provider("openai_compatible", lenient_fakes["openai"])
    for name, (kind, upstream) in CHAT.items():
        make_model(name, (accounts[kind], upstream), is_default=name == "gpt-4o-mini", context_window=128000)
    for name, (kind, upstream) in EMBEDDINGS.items():
        make_model(name, (accounts[kind], upstream), embeddings=True)
    return {"url": live_gateway.url, "token": make_token("fuzz")}


def served_description() -> dict[str, Any]:
    """The served description, with ``model`` narrowed to the registered names (and required)."""
    from django.test import Client

    # (at import, before pytest-django adds "testserver" to ALLOWED_HOSTS: a loopback name is allowed)
    document = Client(HTTP_HOST="localhost").get("/v1/openapi.json").json()
    schemas = document["components"]["schemas"]
    for component, names in (("ChatCompletionRequest", CHAT), ("CompletionRequest", CHAT), ("TokenizeRequest", CHAT),
                             ("EmbeddingRequest", EMBEDDINGS), ("ResponseRequest", CHAT), ("MessagesRequest", CHAT),
                             ("CountTokensRequest", CHAT)):
        body = schemas[component]
        body["properties"]["model"]["enum"] = list(names)
        body["required"] = [*body.get("required", []), "model"]  # all models, not mostly the default one
        # Routing by ``provider`` is tested in tests/gateway/routing; here it only makes "no deployment of
        # provider X serves the model" 400s (and the request never reaches a provider).
        body["properties"].pop("provider", None)
    for item in document["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "model":
                    parameter["schema"] = {**parameter["schema"], "enum": [*CHAT, *EMBEDDINGS]}
    return document


DOCUMENT = served_description()


# Bugs the fuzzer found that are not fixed yet: each has an xfail(strict) regression test in the
# normal suite (tests/gateway/api/test_found_by_fuzzing.py), which fails once it is fixed; then its
# entry here goes too.
def known_bug(case: Any, response: Any) -> str | None:
    return None


def messages_error(body: Any) -> None:
    """The Messages API's error envelope, exactly."""
    assert isinstance(body, dict) and set(body) == {"type", "error"} and body["type"] == "error", body
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"type", "message"}, f"not the Messages error fields: {error!r}"
    assert isinstance(error["message"], str) and error["message"] and isinstance(error["type"], str), error


def error_envelope(ctx: Any, response: Any, case: Any) -> None:
    """Every error response is OpenAI's envelope, exactly (the Messages API's on its paths)."""
    if response.status_code < 400 or known_bug(case, response):
        return
    assert response.headers.get("content-type", [""])[0].startswith("application/json"), "an error is not JSON"
    body = orjson.loads(response.content)
    if case.operation.path in MESSAGES_PATHS:
        messages_error(body)
        return
    assert isinstance(body, dict) and set(body) == {"error"}, f"not OpenAI's error envelope: {body!r}"
    error = body["error"]
    assert isinstance(error, dict) and set(error) == ERROR_FIELDS, f"not OpenAI's error fields: {error!r}"
    assert isinstance(error["message"], str) and error["message"], f"no message: {error!r}"
    assert isinstance(error["type"], str) and error["type"], f"no type: {error!r}"
    assert all(error[key] is None or isinstance(error[key], str) for key in ("param", "code")), error


def sse_stream(ctx: Any, response: Any, case: Any) -> None:
    """A stream's events: JSON chunks of the operation's kind (or the error envelope), then the end."""
    if not response.headers.get("content-type", [""])[0].startswith("text/event-stream"):
        return
    events = [e for e in response.content.replace(b"\r\n", b"\n").split(b"\n\n") if e.strip()]
    assert events, "an empty stream"
    if case.operation.path == "/v1/responses":
        responses_stream(events)
        return
    if case.operation.path in MESSAGES_PATHS:
        messages_stream(events)
        return
    for number, event in enumerate(events):
        assert event.startswith(b"data: "), f"event {number} is not a data line: {event[:200]!r}"
        data = event.removeprefix(b"data: ")
        last = number == len(events) - 1
        if data == b"[DONE]":
            assert last, f"data: [DONE] is event {number} of {len(events)}"
            continue
        chunk = orjson.loads(data)
        assert isinstance(chunk, dict), f"event {number} is not a JSON object: {data[:200]!r}"
        if "error" in chunk:
            assert set(chunk) == {"error"} and set(chunk["error"]) == ERROR_FIELDS, f"malformed error event {chunk!r}"
            assert last, f"an error event ({chunk!r}) is not the last event"
            continue
        assert not last, f"the stream ends without data: [DONE] or an error event: {data[:200]!r}"
        assert chunk.get("object") == CHUNK_OBJECTS[case.operation.path], f"event {number}: {chunk!r}"
        assert isinstance(chunk.get("choices"), list), f"event {number} has no choices: {chunk!r}"


def responses_stream(events: list[bytes]) -> None:
    """A Responses stream: `event: <type>` and `data: <JSON with that type and the next sequence_number>`
    per event, ending with the response's last event (completed, incomplete, failed) or an error event."""
    numbers = []
    for number, event in enumerate(events):
        lines = event.split(b"\n")
        assert len(lines) == 2 and lines[0].startswith(b"event: ") and lines[1].startswith(b"data: "), event[:200]
        data = orjson.loads(lines[1].removeprefix(b"data: "))
        assert data["type"] == lines[0].removeprefix(b"event: ").decode(), event[:200]
        assert isinstance(data.get("sequence_number"), int), event[:200]
        numbers.append(data["sequence_number"])
        assert (data["type"] in RESPONSES_ENDS) == (number == len(events) - 1), f"event {number}: {data['type']}"
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), f"sequence numbers {numbers}"


def messages_stream(events: list[bytes]) -> None:
    """Named events, each with a JSON object of that type; the last one message_stop or an error."""
    for number, event in enumerate(events):
        name, _, data = event.partition(b"\n")
        assert name.startswith(b"event: ") and data.startswith(b"data: "), f"event {number}: {event[:200]!r}"
        payload = orjson.loads(data.removeprefix(b"data: "))
        assert isinstance(payload, dict) and payload.get("type") == name.removeprefix(b"event: ").decode(), payload
        last = number == len(events) - 1
        if payload["type"] == "error":
            messages_error(payload)
        assert (payload["type"] in ("message_stop", "error")) == last, f"event {number} of {len(events)}: {payload!r}"


def request_validator(path: str) -> OAS30Validator:
    body = DOCUMENT["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return OAS30Validator({**body, "components": DOCUMENT["components"]})


def described_bodies_pass_validation(ctx: Any, response: Any, case: Any) -> None:
    """A JSON body the description allows passes the gateway's own checks: the description states every
    rule the gateway enforces. (A provider may still refuse a parameter it does not support, with a 400
    that names it: the description says so, and which model is served by which provider is not in it.)"""
    if case.method.upper() != "POST" or not isinstance(case.body, dict) or case.path not in VALIDATE:
        return
    sent_as = response.request.headers.get("Content-Type", "")
    if not sent_as.startswith("application/json") or not request_validator(case.path).is_valid(case.body):
        return
    if case.path == "/v1/tokenize":  # the DRF view: nothing but the gateway answers
        assert response.status_code == 200, f"the description allows this body; the gateway answered {response.status_code}"
        return
    try:
        VALIDATE[case.path](dict(case.body))
    except ProviderError as exc:
        raise AssertionError(f"the description allows this body; the gateway's checks refuse it: {exc.message}") from None


def _inference_checks(operation: Operation) -> Any:
    def check(body: dict[str, Any]) -> None:  # what gateway/inference/pipeline.py checks before routing
        validation.optional_string(body, "model")
        operation.validate(body)
        if operation.stream:
            validation.stream_flags(body)
    return check


VALIDATE = {"/v1/chat/completions": _inference_checks(operations.CHAT),
            "/v1/completions": _inference_checks(operations.COMPLETIONS),
            "/v1/embeddings": _inference_checks(operations.EMBEDDINGS),
            "/v1/responses": _inference_checks(operations.RESPONSES), "/v1/tokenize": None,
            "/v1/messages": _inference_checks(operations.MESSAGES),
            "/v1/messages/count_tokens": _inference_checks(operations.COUNT_TOKENS)}

CHECKS = [builtin.not_a_server_error, openapi.status_code_conformance, openapi.content_type_conformance,
          openapi.response_headers_conformance, openapi.response_schema_conformance, error_envelope, sse_stream,
          described_bodies_pass_validation]

schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.generation.update(max_examples=MAX_EXAMPLES, database="none", deterministic=not SEED)
schema.config.output.sanitization.update(enabled=False)  # show the requests as sent (test tokens only)
if SEED:
    schema.config.seed = int(SEED)


@schema.hook
def map_body(context: Any, body: Any) -> Any:
    """Spread the bodies over all the models, evenly: hypothesis favours an enum's first value."""
    if isinstance(body, dict) and body.get("model") in (*CHAT, *EMBEDDINGS):
        names = list(EMBEDDINGS if context.operation.path == "/v1/embeddings" else CHAT)
        rest = json.dumps({k: v for k, v in body.items() if k != "model"}, sort_keys=True, default=repr)
        body = {**body, "model": names[hashlib.sha256(rest.encode()).digest()[0] % len(names)]}
    return body


FRAMING = {"content-length", "transfer-encoding", "host", "connection", "expect", "te", "upgrade"}


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # one registry per operation, on purpose
def test_every_operation_answers_as_described(case: Any, gateway: dict[str, str]) -> None:
    # Headers that frame the HTTP message itself: a generated value is refused by the HTTP server
    # (uvicorn's "Invalid HTTP request received", plain text) before the gateway ever sees it.
    for name in [name for name in case.headers or {} if name.lower() in FRAMING]:
        del case.headers[name]
    response = case.call_and_validate(base_url=gateway["url"], headers={"Authorization": f"Bearer {gateway['token']}"},
                                      checks=CHECKS, timeout=30)
    if case.path in VALIDATE and case.path != "/v1/tokenize" and isinstance(case.body, dict):
        ANSWERED[(case.path, str(case.body.get("model")))].add(response.status_code)


ANSWERED: collections.defaultdict[tuple[str, str], set[int]] = collections.defaultdict(set)


def test_the_fuzzed_requests_reached_every_model(gateway: dict[str, str]) -> None:
    """Each inference endpoint got a 200 from every model it can serve: the requests were not all refused."""
    if not ANSWERED:
        pytest.skip("runs after the fuzz test, in the same session")
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"):
        for model in EMBEDDINGS if path == "/v1/embeddings" else CHAT:
            if 200 not in ANSWERED[(path, model)]:
                # The generated bodies for this model all used what its provider refuses (e.g. `dimensions`
                # for a fixed-size embedding model, 400 unsupported_parameter): its documented example must pass.
                ANSWERED[(path, model)].add(send_example(gateway, path, model))
            assert 200 in ANSWERED[(path, model)], (path, model, sorted(ANSWERED[(path, model)]))


def send_example(gateway: dict[str, str], path: str, model: str) -> int:
    content = DOCUMENT["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    example = next(iter(content["examples"].values()))["value"]
    response = httpx.post(f"{gateway['url']}{path}", json={**example, "model": model},
                          headers={"Authorization": f"Bearer {gateway['token']}"}, timeout=30)
    return response.status_code

