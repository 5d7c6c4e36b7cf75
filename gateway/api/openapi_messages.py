"""The OpenAPI description of the Messages API endpoints (``/v1/messages``, ``/v1/messages/count_tokens``):
their bodies, their error envelope and examples. gateway/api/openapi.py adds them to the document."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_field
from rest_framework import serializers

from gateway.api.openapi_bodies import InferenceRequestSerializer, choice, name
from providers.messages.passthrough import FORWARDED_HEADERS


class MessagesErrorDetailSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="invalid_request_error, authentication_error, permission_error, "
                                           "not_found_error, request_too_large, rate_limit_error, api_error, "
                                           "overloaded_error")
    message = serializers.CharField()


class MessagesErrorSerializer(serializers.Serializer):
    """The Messages API's error envelope: every error of its endpoints has this body."""

    type = choice("error")
    error = MessagesErrorDetailSerializer()


BLOCKS = {"type": "array", "items": {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}},
                                      "additionalProperties": True}}


@extend_schema_field({"oneOf": [{"type": "string"}, BLOCKS]})
class TextOrBlocks(serializers.JSONField):
    """A string or an array of content blocks (objects with a ``type``)."""


class MessageParamSerializer(serializers.Serializer):
    role = choice("user", "assistant", "system")
    content = TextOrBlocks(help_text="A string, or content blocks: text, image (base64 or url source), tool_use, "
                                     "tool_result, thinking (see the README's parameter table).")


class MessagesTurnsSerializer(InferenceRequestSerializer):
    model = name(help_text="A registry name or a name a registry pattern matches.")
    messages = serializers.ListField(child=MessageParamSerializer(), min_length=1, help_text="Alternating user and "
                                     "assistant turns (and system instructions between them).")
    system = TextOrBlocks(required=False, help_text="A string or text blocks.")
    tools = serializers.ListField(child=serializers.DictField(), required=False)
    tool_choice = serializers.DictField(required=False)
    thinking = serializers.DictField(required=False)


class MessagesRequestSerializer(MessagesTurnsSerializer):
    max_tokens = serializers.IntegerField(min_value=1)
    stream = serializers.BooleanField(required=False, default=False,
                                      help_text="Answer as the Messages API's server-sent events.")
    temperature = serializers.FloatField(required=False, min_value=0, max_value=1)
    top_p = serializers.FloatField(required=False, min_value=0, max_value=1)
    top_k = serializers.IntegerField(required=False, min_value=0)
    stop_sequences = serializers.ListField(child=serializers.CharField(), required=False)
    metadata = serializers.DictField(required=False)


class CountTokensRequestSerializer(MessagesTurnsSerializer):
    pass


class MessagesUsageSerializer(serializers.Serializer):
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cache_creation_input_tokens = serializers.IntegerField(required=False, allow_null=True)
    cache_read_input_tokens = serializers.IntegerField(required=False, allow_null=True)


class MessageSerializer(serializers.Serializer):
    id = serializers.CharField()
    type = choice("message")
    role = choice("assistant")
    model = serializers.CharField()
    content = serializers.ListField(child=serializers.DictField(), help_text="text and tool_use blocks (and "
                                    "thinking blocks from deployments that speak the Messages API).")
    stop_reason = serializers.CharField(allow_null=True)
    stop_sequence = serializers.CharField(allow_null=True)
    usage = MessagesUsageSerializer()


class TokenCountSerializer(serializers.Serializer):
    input_tokens = serializers.IntegerField()


ERRORS: dict[int, str] = {
    400: "Invalid request (`invalid_request_error`): a missing `max_tokens`, ill-typed turns, a block the provider "
         "cannot take, or the upstream's own 400.",
    401: "No token, or a wrong, expired or revoked one (`authentication_error`).",
    403: "This token may not use the model (`permission_error`).",
    404: "Unknown model (`not_found_error`).",
    413: "The request body is larger than the gateway's limit (`request_too_large`).",
    429: "A limit of the gateway or the upstream's (`rate_limit_error`); wait for `Retry-After` seconds.",
    502: "The upstream failed (`api_error`).",
    503: "The upstream is overloaded or the model has no active deployment (`overloaded_error`).",
    504: "The upstream timed out (`api_error`).",
}

HELLO = [{"role": "user", "content": "Hello!"}]
WEATHER = {"name": "get_weather", "description": "The weather in a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
MESSAGES_EXAMPLES = [
    ("A message (passed through)", {"model": "claude-sonnet-4-5", "max_tokens": 256, "messages": HELLO}),
    ("Streamed", {"model": "claude-sonnet-4-5", "max_tokens": 256, "messages": HELLO, "stream": True}),
    ("With a cached system prompt", {"model": "claude-sonnet-4-5", "max_tokens": 256, "messages": HELLO, "system": [
        {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}]}),
    ("A tool, answered by an OpenAI model", {"model": "gpt-4o-mini", "max_tokens": 256, "tools": [WEATHER],
                                             "messages": [{"role": "user", "content": "Weather in Paris?"}]}),
]
COUNT_EXAMPLES = [
    ("Counted by the upstream", {"model": "claude-sonnet-4-5", "messages": HELLO}),
    ("Estimated by the gateway", {"model": "gpt-4o-mini", "system": "You are terse.", "messages": HELLO}),
]
API_VERSION = OpenApiParameter(
    FORWARDED_HEADERS[0], OpenApiTypes.STR, OpenApiParameter.HEADER,
    description="Forwarded to deployments that speak the Messages API (the account's own version when left out).")
BETA = OpenApiParameter(
    FORWARDED_HEADERS[1], OpenApiTypes.STR, OpenApiParameter.HEADER,
    description="Beta flags, comma-separated; forwarded to deployments that speak the Messages API.")

SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "description": "One server-sent event of the Messages API: `event` names it (message_start, content_block_start, "
                   "ping, content_block_delta, content_block_stop, message_delta, message_stop, or error: a failure "
                   "after the stream started, the last event) and `data` is a JSON object with the same `type`.",
    "required": ["event", "data"],
    "properties": {"event": {"type": "string"}, "data": {"type": "string", "pattern": r"^\{.*\}$"}},
}


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    return {status: OpenApiResponse(MessagesErrorSerializer, description=ERRORS[status]) for status in statuses}


def describe(examples: Any, session_id: OpenApiParameter, request_id: OpenApiParameter,
             retry_after: OpenApiParameter) -> dict[str, dict[str, Any]]:
    """The two endpoints' ``extend_schema`` arguments, with the shared headers of the inference endpoints."""
    headers = [session_id, request_id, retry_after, API_VERSION, BETA]
    statuses = (400, 401, 403, 404, 413, 429, 502, 503, 504)
    answer = "A `message` (the Messages API's shape, whichever provider answered)."
    return {
        "/v1/messages": dict(
            operation_id="createMessage", tags=["messages"], summary="Message (the Messages API)",
            description="The Messages API (what Claude Code speaks), for every provider kind: passed through byte for "
                        "byte to deployments that speak it (only a differing `model` value replaced), translated for "
                        "the others. Errors have the Messages API's envelope. Accepts the token as `x-api-key` too.",
            request=MessagesRequestSerializer, parameters=headers, examples=examples(*MESSAGES_EXAMPLES),
            responses={(200, "application/json"): OpenApiResponse(MessageSerializer, description=answer),
                       (200, "text/event-stream"): OpenApiResponse(SSE_EVENT, description=answer),
                       **errors(*statuses)}),
        "/v1/messages/count_tokens": dict(
            operation_id="countMessageTokens", tags=["messages"], summary="Count a message's input tokens",
            description="The upstream's own count for deployments that speak the Messages API; the gateway's "
                        "estimate (tiktoken) for the others. Costs nothing.",
            request=CountTokensRequestSerializer, parameters=headers, examples=examples(*COUNT_EXAMPLES),
            responses={200: OpenApiResponse(TokenCountSerializer, description="The input tokens."),
                       **errors(*statuses)}),
    }

