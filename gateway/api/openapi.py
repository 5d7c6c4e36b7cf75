"""The gateway's own OpenAPI description: ``GET /v1/openapi.json`` and the docs page ``GET /v1/docs``.

drf-spectacular generates the description from the DRF views; the extensions here add what it
cannot see in them:

- the request/response bodies and error responses of each DRF view (the views stay untouched:
  ``OpenApiViewExtension`` hands drf-spectacular an annotated subclass, for the description only);
- the token authentication's three forms as security schemes;
- rules of the bodies that serializer fields cannot express (``_refine``: e.g. exactly one of
  ``input``/``messages``, ``stream_options`` only with ``stream``, unknown OpenAI fields allowed);
- the endpoints that are not DRF views — the inference endpoints of the ASGI hot path
  (the ``HotView`` entries of ``proxy_site/urls.py``, read by ``gateway.edge.app.hot_routes()``) and the plain Django ``/health`` view. The postprocessing hook
  ``add_undiscovered_operations`` describes them with drf-spectacular's own operation builder
  (the helper it uses for webhooks), so they get the same serializers, security and error
  envelope as the rest. Nothing here serves a request.

Bodies are in gateway/api/openapi_bodies.py.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerExtension,
    OpenApiViewExtension,
)
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import build_mocked_view
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiJsonRenderer2
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.request import Request
from rest_framework.response import Response

from gateway.api import openapi_bodies as bodies
from gateway.api import openapi_messages
from gateway.api import openapi_responses as responses
from gateway.conf import gateway_settings

ERRORS: dict[int, str] = {
    400: "Invalid request: unparsable JSON, a missing or ill-typed field (named in `param`), a parameter the "
         "provider does not support, or the upstream's own 400.",
    401: "No token, or a wrong, expired or revoked one (`code: invalid_api_key`).",
    403: "This token may not use the model (`code: model_not_allowed`).",
    404: "Unknown model (`code: model_not_found`).",
    413: "The request body is larger than the gateway's limit (`code: request_too_large`).",
    415: "The body is not sent as `application/json` (`code: unsupported_media_type`).",
    429: "The upstream's rate limit (`type: rate_limit_error`); wait for `Retry-After` seconds.",
    502: "The upstream could not be reached, answered something unreadable, or rejected the gateway's "
         "provider key (the key is never shown).",
    503: "The upstream is unavailable, or the model has no active deployment (`code: no_deployment`).",
    504: "The upstream timed out (`code: upstream_timeout`).",
}
INFERENCE_ERRORS = (400, 401, 403, 404, 413, 429, 502, 503, 504)
SSE_DESCRIPTION = (
    "With `\"stream\": true`: server-sent events, one `data: {{json}}` line per {chunk} and a final "
    "`data: [DONE]`. A failure after the stream started ends it with `data: {{\"error\": {{...}}}}` "
    "(the error envelope)."
)
RETRY_AFTER = OpenApiParameter(
    "Retry-After", OpenApiTypes.STR, OpenApiParameter.HEADER, response=[429, 503],
    description="Seconds to wait before retrying, when the upstream said so.",
)
REQUEST_ID = OpenApiParameter(
    "X-Request-ID", OpenApiTypes.STR, OpenApiParameter.HEADER, response=True,
    description="The request's id (the client's own `X-Request-ID` when it is a safe string), as logged.",
)
SESSION_ID = OpenApiParameter(
    "X-Session-ID", OpenApiTypes.STR, OpenApiParameter.HEADER,
    description="A session id recorded on the request log (a `session_id` cookie works too); used for nothing else.",
)


def errors(*statuses: int, **why: str) -> dict[int, OpenApiResponse]:
    """Responses with OpenAI's error envelope for these statuses (``why={"400": ...}`` overrides a text)."""
    return {status: OpenApiResponse(bodies.ErrorSerializer, description=why.get(str(status), ERRORS[status]))
            for status in statuses}


def ok(body: Any, description: str) -> OpenApiResponse:
    return OpenApiResponse(body, description=description)


# --- Authentication ---------------------------------------------------------------------------

class GatewayTokenScheme(OpenApiAuthenticationExtension):
    """A gateway token in any one of its four forms (alternatives, not all together)."""

    target_class = "gateway.access.authentication.GatewayTokenAuthentication"

    @property
    def name(self) -> list[str]:  # type: ignore[override]
        names = ["bearerAuth", "xAuthToken", "xApiKey"]
        return [*names, "authTokenQuery"] if gateway_settings.ALLOW_QUERY_TOKEN else names

    def get_security_definition(self, auto_schema: AutoSchema) -> list[dict[str, Any]]:
        definitions = [
            {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <token>` (what OpenAI SDKs send)."},
            {"type": "apiKey", "in": "header", "name": "X-AUTH-TOKEN", "description": "The seed's header."},
            {"type": "apiKey", "in": "header", "name": "X-API-Key",
             "description": "What the Messages API's SDKs (and Claude Code with an API key) send."},
            {"type": "apiKey", "in": "query", "name": "auth_token",
             "description": "The seed's query form; never logged. An operator can switch it off."},
        ]
        return definitions[: len(self.name)]

    def get_security_requirement(self, auto_schema: AutoSchema) -> list[dict[str, list[str]]]:
        # With anonymous access on, no token at all is one more way in (OpenAPI's empty requirement).
        return [{name: []} for name in self.name] + ([{}] if gateway_settings.ANONYMOUS else [])


# --- Request examples ------------------------------------------------------------------------

def examples(*bodies: tuple[str, dict[str, Any]]) -> list[OpenApiExample]:
    """Request examples, (summary, body) each; the first is what Swagger's "Try it out" sends. Each must be
    a request the gateway accepts with the default registry: a test sends every one to the live gateway."""
    return [OpenApiExample(summary, value=body, request_only=True) for summary, body in bodies]


HELLO = [{"role": "user", "content": "Hello!"}]
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
LLAMA = "@cf/meta/llama-4-scout-17b-16e-instruct"  # legacy completions need a model that is not OpenAI's chat-only
CHAT_EXAMPLES = examples(
    ("A chat", {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "You are terse."}, *HELLO]}),
    ("Streamed, with a final usage chunk",
     {"model": "gpt-4o-mini", "messages": HELLO, "stream": True, "stream_options": {"include_usage": True}}),
    ("With a tool", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Weather in Paris?"}],
                     "tools": [WEATHER_TOOL], "tool_choice": "auto"}),
    ("Content parts and sampling", {"model": "gpt-4o-mini", "max_tokens": 64, "temperature": 0.2,
                                    "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello!"}]}]}),
)
COMPLETION_EXAMPLES = examples(
    ("A completion", {"model": LLAMA, "prompt": "Say this is a test.", "max_tokens": 16}),
    ("Streamed", {"model": LLAMA, "prompt": "Say this is a test.", "stream": True}),
)
EMBEDDING_EXAMPLES = examples(
    ("One text", {"model": "text-embedding-3-small", "input": "The food was delicious."}),
    ("Several texts", {"model": "text-embedding-3-small", "input": ["first text", "second text"],
                       "encoding_format": "float"}),
)
RESPONSE_EXAMPLES = examples(
    ("A text input", {"model": "gpt-4o-mini", "input": "Hello!", "instructions": "You are terse."}),
    ("Streamed", {"model": "gpt-4o-mini", "input": "Hello!", "stream": True}),
    ("With a function tool", {"model": "gpt-4o-mini", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "Weather in Paris?"}]}], "tools": [
        {"type": "function", "name": "get_weather", "description": "The weather in a city.",
         "parameters": WEATHER_TOOL["function"]["parameters"], "strict": False}], "tool_choice": "auto"}),
    ("A tool's result sent back, not stored", {"model": "gpt-4o-mini", "store": False, "input": [
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\": \"Paris\"}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "22C and sunny"}]}),
)
TOKENIZE_EXAMPLES = examples(
    ("A text", {"model": "gpt-4o-mini", "input": "Hello, world!"}),
    ("Chat messages", {"model": "gpt-4o-mini", "messages": HELLO}),
)


# --- The DRF views ----------------------------------------------------------------------------

def _describe(target: str, method: str, **schema: Any) -> None:
    """Register an extension that documents one DRF view's method, leaving the view module as it is."""
    _describe_methods(target, {method: schema})


def _describe_methods(target: str, methods: dict[str, dict[str, Any]]) -> None:
    """The same for several methods of one view (one extension per view: a second would replace the first)."""

    def view_replacement(self: OpenApiViewExtension) -> type:
        described = {method: extend_schema(**schema) for method, schema in methods.items()}
        return extend_schema_view(**described)(type(self.target.__name__, (self.target,), {}))

    name = target.rsplit(".", 1)[1] + "Schema"
    type(name, (OpenApiViewExtension,), {"target_class": target, "view_replacement": view_replacement})


_describe("gateway.api.views.ModelList", "get", operation_id="listModels", tags=["models"], summary="List models",
          responses={200: ok(bodies.ModelListSerializer, "The models this token may use."), **errors(401)})
_describe("gateway.api.views.ModelDetail", "get", operation_id="retrieveModel", tags=["models"], summary="Retrieve a model",
          parameters=[OpenApiParameter("model", OpenApiTypes.STR, OpenApiParameter.PATH,
                                       description="A model id; it may contain `/` (e.g. `@cf/meta/llama-3-8b`).")],
          responses={200: ok(bodies.ModelSerializer, "The model."), **errors(401, 404)})
_describe("gateway.api.views.Tokenize", "post", operation_id="tokenize", tags=["tokenize"], summary="Count tokens",
          request=bodies.TokenizeRequestSerializer, examples=TOKENIZE_EXAMPLES,
          responses={200: ok(bodies.TokenizeSerializer, "The token count."), **errors(400, 401, 403, 404, 415, **{
              "400": "Invalid request: unparsable JSON, not exactly one of `input` and `messages`, an ill-typed "
                     "field (named in `param`), or no `model` and no default model."})})
_describe("gateway.api.catalog.ModelOptions", "get", operation_id="listModelOptions", tags=["models"],
          summary="The model catalogue",
          responses={200: ok(bodies.ModelOptionListSerializer, "The catalogue."), **errors(401)})
_describe("gateway.api.catalog.RouteCheck", "get", operation_id="checkRoute", tags=["models"],
          summary="Which deployments would serve a model (no upstream call)",
          parameters=[
              OpenApiParameter("model", OpenApiTypes.STR, OpenApiParameter.QUERY,
                               description="The model to route; the default model when left out."),
              OpenApiParameter("provider", OpenApiTypes.STR, OpenApiParameter.QUERY,
                               description="Keep only this provider kind's or account's deployments."),
          ],
          responses={200: ok(bodies.RouteCheckSerializer, "The route."), **errors(400, 401, 403, 404, **{
              "400": "No `model` and no default model, or no deployment of the given `provider` serves it.",
              "404": "No registry entry serves the model (`code: model_not_found`)."})})


RESPONSE_ID = OpenApiParameter("response_id", OpenApiTypes.STR, OpenApiParameter.PATH,
                               description="The id of a response this token created with `store` (not false).")
NOT_STORED = {"404": "No response with this id was stored by this token (another token's response is not found "
                     "either; `code: not_found`)."}
_describe_methods("gateway.responses.views.ResponseDetail", {
    "get": dict(operation_id="getResponse", tags=["responses"], summary="Retrieve a stored response",
                parameters=[RESPONSE_ID],
                responses={200: ok(responses.ResponseObjectSerializer, "The response as it was answered."),
                           **errors(401, 404, **NOT_STORED)}),
    "delete": dict(operation_id="deleteResponse", tags=["responses"], summary="Delete a stored response",
                   parameters=[RESPONSE_ID],
                   responses={200: ok(responses.ResponseDeletedSerializer, "Deleted, with its input items."),
                              **errors(401, 404, **NOT_STORED)}),
})
_describe("gateway.responses.views.ResponseInputItems", "get", operation_id="listInputItems", tags=["responses"],
          summary="The input items of a stored response",
          parameters=[
              RESPONSE_ID,
              OpenApiParameter("limit", OpenApiTypes.INT, OpenApiParameter.QUERY, description="1 to 100; 20."),
              OpenApiParameter("order", OpenApiTypes.STR, OpenApiParameter.QUERY, enum=["asc", "desc"],
                               description="`desc` (newest first, the default) or `asc`."),
              OpenApiParameter("after", OpenApiTypes.STR, OpenApiParameter.QUERY,
                               description="An item id: the items after it (pagination)."),
          ],
          responses={200: ok(responses.ResponseItemListSerializer, "Every item the model read (the earlier "
                             "turns of its conversation, then its input), a page at a time."),
                     **errors(400, 401, 404, **NOT_STORED)})


# --- Rules of the bodies that a serializer's fields cannot express ---------------------------

def _refine(target: type, rules: dict[str, Any]) -> None:
    """Register an extension that adds these JSON-schema keywords to one serializer's component."""

    def map_serializer(self: OpenApiSerializerExtension, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        return {**auto_schema._map_serializer(self.target, direction, bypass_extensions=True), **rules}

    type(target.__name__ + "Rules", (OpenApiSerializerExtension,),
         {"target_class": target, "map_serializer": map_serializer})


# Unknown OpenAI fields pass through the gateway, in requests and in answers.
OPEN = {"additionalProperties": True}
STREAM_OPTIONS_NEED_STREAM = {"anyOf": [
    {"not": {"required": ["stream_options"]}},
    {"required": ["stream"], "properties": {"stream": {"type": "boolean", "enum": [True]}}},
]}
for _body in (bodies.ChatCompletionRequestSerializer, bodies.CompletionRequestSerializer):
    _refine(_body, {**OPEN, **STREAM_OPTIONS_NEED_STREAM})
for _body in (bodies.EmbeddingRequestSerializer, bodies.ChatCompletionSerializer, bodies.CompletionSerializer,
              bodies.EmbeddingListSerializer):
    _refine(_body, OPEN)
_refine(responses.ResponseObjectSerializer, OPEN)
_refine(responses.ResponseRequestSerializer, {**OPEN, "anyOf": [{"required": ["input"]},
                                                                {"required": ["previous_response_id"]}]})
# A message has content, unless it is an assistant's message with tool (or function) calls.
_refine(bodies.ChatMessageSerializer, {**OPEN, "anyOf": [
    {"required": ["content"], "properties": {"content": {"oneOf": [{"type": "string"}, {"type": "array"}]}}},
    {"required": ["role", "tool_calls"],
     "properties": {"role": {"type": "string", "enum": ["assistant"]}, "tool_calls": {"type": "array", "minItems": 1}}},
    {"required": ["role", "function_call"],
     "properties": {"role": {"type": "string", "enum": ["assistant"]}, "function_call": {"type": "object", "minProperties": 1}}},
]})
for _body in (openapi_messages.MessagesRequestSerializer, openapi_messages.CountTokensRequestSerializer,
              openapi_messages.MessageSerializer):  # unknown fields pass through to Anthropic deployments
    _refine(_body, OPEN)
_refine(bodies.TokenizeRequestSerializer, {"oneOf": [{"required": ["input"]}, {"required": ["messages"]}]})


# --- What drf-spectacular cannot discover -----------------------------------------------------

# The description of an endpoint that is not a DRF view: ``extend_schema`` arguments.
Undiscovered = dict[str, Any]


def sse_event(chunk: str) -> dict[str, Any]:
    """The schema of one server-sent event of a stream (not of the whole body).

    OpenAPI 3.0 has no way to describe a stream item by item; 3.2 added ``itemSchema`` for that, and
    tools that validate streams (schemathesis) read a 3.0 ``schema`` of ``text/event-stream`` the same
    way: as one event, parsed into its fields (``data``, ``event``, ``id``, ``retry``). The gateway
    sends only ``data`` lines, each a JSON object on one line, or ``[DONE]``.
    """
    return {
        "type": "object",
        "description": f"One server-sent event: `data` is a JSON {chunk}, the error envelope (a failure after "
                       "the stream started; the last event), or `[DONE]` (the end of the stream).",
        "required": ["data"],
        "properties": {"data": {"type": "string", "pattern": r"^(\[DONE\]|\{.*\})$"}},
    }


def _inference(operation_id: str, summary: str, description: str, request: type, response: type,
               answer: str, chunk: str | None, examples: list[OpenApiExample]) -> Undiscovered:
    if chunk:
        answer += " " + SSE_DESCRIPTION.format(chunk=chunk)
    responses: dict[Any, Any] = {(200, "application/json"): ok(response, answer), **errors(*INFERENCE_ERRORS)}
    if chunk:
        responses[(200, "text/event-stream")] = ok(sse_event(chunk), answer)
    return dict(
        operation_id=operation_id, tags=["inference"], summary=summary, description=description,
        request=request, responses=responses, parameters=[SESSION_ID, REQUEST_ID, RETRY_AFTER], examples=examples,
    )


HOT_PATH: dict[str, Undiscovered] = {
    "/v1/chat/completions": _inference(
        "createChatCompletion", "Chat completion",
        "OpenAI's chat completions API, answered by the model's deployments in order (fallbacks before the "
        "first byte). Fields not listed pass through to providers that accept them.",
        bodies.ChatCompletionRequestSerializer, bodies.ChatCompletionSerializer,
        "A `chat.completion` object.", "`chat.completion.chunk`", CHAT_EXAMPLES),
    "/v1/completions": _inference(
        "createCompletion", "Text completion (legacy)",
        "OpenAI's legacy completions API; for chat-only providers the prompt becomes one user message.",
        bodies.CompletionRequestSerializer, bodies.CompletionSerializer,
        "A `text_completion` object.", "`text_completion` chunk", COMPLETION_EXAMPLES),
    "/v1/embeddings": _inference(
        "createEmbedding", "Embeddings",
        "OpenAI's embeddings API; `encoding_format: base64` returns little-endian float32, as the SDK expects.",
        bodies.EmbeddingRequestSerializer, bodies.EmbeddingListSerializer,
        "A list of `embedding` objects.", None, EMBEDDING_EXAMPLES),
    **openapi_messages.describe(examples, SESSION_ID, REQUEST_ID, RETRY_AFTER),
}

RESPONSE_EVENT = {
    "type": "object",
    "description": "One server-sent event of a Responses stream: `event` is its type and `data` a JSON object "
                   "with `type` and `sequence_number`: `response.created`, `response.in_progress`, "
                   "`response.output_item.added`, `response.content_part.added`, `response.output_text.delta`, "
                   "`response.function_call_arguments.delta`, their `.done` events, `response.output_item.done`, "
                   "and last `response.completed` (or `response.incomplete`) with the whole response and its "
                   "usage. A failure after the stream started ends it with `response.failed` (or an `error` "
                   "event). There is no `[DONE]`.",
    "required": ["data"],
    "properties": {"event": {"type": "string"}, "data": {"type": "string", "pattern": r"^\{.*\}$"}},
}
HOT_PATH["/v1/responses"] = dict(
    operation_id="createResponse", tags=["inference"], summary="Create a model response (Responses API)",
    description=(
        "OpenAI's Responses API on every provider: passed through to OpenAI (and to OpenAI-compatible accounts "
        "with the option `responses: true`), translated to chat completions for the others. With `store` (the "
        "default) the response is kept for `previous_response_id` and `GET /v1/responses/{id}`."),
    request=responses.ResponseRequestSerializer,
    responses={(200, "application/json"): ok(responses.ResponseObjectSerializer, "A `response` object."),
               (200, "text/event-stream"): ok(RESPONSE_EVENT, "With `\"stream\": true`: Responses events."),
               **errors(*INFERENCE_ERRORS, **{"400": ERRORS[400] + " Also: an unknown or another token's "
                                                   "`previous_response_id`, a tool or input item the provider "
                                                   "cannot honour."})},
    parameters=[SESSION_ID, REQUEST_ID, RETRY_AFTER], examples=RESPONSE_EXAMPLES,
)

HEALTH: Undiscovered = dict(
    operation_id="health", tags=["health"], summary="Health check", auth=[],
    description=(
        "The gateway is up; the database answers; each provider kind is configured and available. No token "
        "needed. Operators also get `accounts` (each provider account's name, state and last upstream error) "
        "and `log_writer` (the request-log queue): a logged-in staff user of the admin (its session cookie), "
        "or `Authorization: Bearer <GATEWAY_OPS_TOKEN>`. A gateway API token does not grant them."),
    responses={200: ok(bodies.HealthSerializer, "Up; the database answers."),
               503: ok(bodies.HealthSerializer, "The database does not answer.")},
)


def undiscovered_routes() -> dict[str, tuple[str, Undiscovered | None]]:
    """Path -> (method, description) of every endpoint that is not a DRF view (None: undocumented)."""
    from gateway.edge.app import hot_routes

    routes: dict[str, tuple[str, Undiscovered | None]] = {
        path: (view.method, HOT_PATH.get(path)) for path, view in hot_routes().items()
    }
    routes["/health"] = ("GET", HEALTH)
    return routes


def add_undiscovered_operations(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: describe the hot-path endpoints and ``/health``."""
    described = {path: route for path, route in undiscovered_routes().items() if route[1] is not None}
    # (a new hot-path endpoint without a description stays out: the tests catch it)
    for path, (method, undiscovered) in described.items():
        view = build_mocked_view(method, path, extend_schema(**undiscovered), generator.registry)
        operation = view.schema.get_operation(path, path, "", method, generator.registry)
        result["paths"].setdefault(path, {})[method.lower()] = operation
    components = result.setdefault("components", {})
    for kind, items in generator.registry.build({}).items():
        components.setdefault(kind, {}).update(items)
    result["paths"] = dict(sorted(result["paths"].items()))
    return result


# --- The endpoints that serve the description -------------------------------------------------

class OpenApiDocument(SpectacularAPIView):
    """GET /v1/openapi.json: this API's OpenAPI 3 description. No token needed."""

    renderer_classes = [OpenApiJsonRenderer2, OpenApiJsonRenderer]
    authentication_classes: list[type] = []

    @extend_schema(operation_id="getOpenApi", tags=["meta"], summary="This OpenAPI description",
                   responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="An OpenAPI 3 document.")})
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class ApiDocs(SpectacularSwaggerView):
    """GET /v1/docs: Swagger UI over /v1/openapi.json, its assets served by the gateway itself."""

    authentication_classes: list[type] = []
    url_name = "openapi"
