"""The Responses API's bodies as DRF serializers, for the OpenAPI description only (as gateway/api/openapi_bodies.py)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from gateway.api.openapi_bodies import (
    OBJECT,
    FreeObject,
    InferenceRequestSerializer,
    StringOrObject,
    choice,
    name,
)


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "array", "items": OBJECT}]})
class ResponseInput(serializers.JSONField):
    pass


class ResponseRequestSerializer(InferenceRequestSerializer):
    # Described as required: the gateway also takes a body with only `previous_response_id` (it
    # continues that conversation as it is), which the description need not advertise.
    input = ResponseInput(required=True, help_text=(
        "A string (one user message) or input items: messages (content a string or `input_text` / "
        "`input_image` parts), `function_call` and `function_call_output` items."))
    instructions = serializers.CharField(required=False, allow_null=True,
                                         help_text="A system message for this response only (not carried over).")
    previous_response_id = name(required=False, allow_null=True, help_text=(
        "Continue the conversation of a response this token stored: its input and output come first, "
        "on whichever provider serves this request."))
    store = serializers.BooleanField(required=False, default=True, help_text=(
        "Keep the response and its input for `previous_response_id` and `GET /v1/responses/{id}` "
        "(GATEWAY_RESPONSES_RETENTION_DAYS). `false`: nothing is kept."))
    stream = serializers.BooleanField(required=False, default=False,
                                      help_text="Answer as server-sent Responses events (text/event-stream).")
    max_output_tokens = serializers.IntegerField(required=False, min_value=1)
    temperature = serializers.FloatField(required=False, min_value=0, max_value=2)
    top_p = serializers.FloatField(required=False, min_value=0, max_value=1)
    tools = serializers.ListField(child=FreeObject(), required=False, help_text=(
        "Function tools (also grouped in a `namespace`) and free-text `custom` tools on every provider; "
        "hosted tools only where the provider serves the Responses API itself."))
    tool_choice = StringOrObject(required=False)
    parallel_tool_calls = serializers.BooleanField(required=False)
    text = FreeObject(required=False, help_text="`format`: `text`, `json_object` or `json_schema`.")
    reasoning = FreeObject(required=False, help_text="`effort`, where the provider has an equivalent.")
    metadata = FreeObject(required=False)


class ResponseUsageSerializer(serializers.Serializer):
    input_tokens = serializers.IntegerField()
    input_tokens_details = FreeObject(help_text="`cached_tokens`: the part read from the provider's prompt cache.")
    output_tokens = serializers.IntegerField()
    output_tokens_details = FreeObject()
    total_tokens = serializers.IntegerField()


class ResponseObjectSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = choice("response")
    created_at = serializers.IntegerField()
    status = choice("completed", "failed", "in_progress", "incomplete")
    model = serializers.CharField()
    output = serializers.ListField(child=FreeObject(), help_text=(
        "Output items: `message` (with `output_text` parts), `function_call`, `custom_tool_call`."))
    previous_response_id = serializers.CharField(allow_null=True, required=False)
    error = FreeObject(allow_null=True, required=False)
    usage = ResponseUsageSerializer(required=False)


class ResponseItemListSerializer(serializers.Serializer):
    object = choice("list")
    data = serializers.ListField(child=FreeObject())
    first_id = serializers.CharField()
    last_id = serializers.CharField()
    has_more = serializers.BooleanField()


class ResponseDeletedSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = choice("response")
    deleted = serializers.BooleanField()
