"""Request and response bodies of the API as DRF serializers, for the OpenAPI description only.

Nothing here validates or builds a real request or response: the views and the hot path do that
(gateway/api/views.py, gateway/api/catalog.py, gateway/inference/validation.py). These classes only describe the
shapes to drf-spectacular. The inference bodies list the fields that matter most; OpenAI fields
not named here are allowed too (``additionalProperties``), because the gateway passes them through.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from gateway.inference.validation import ROLES

STRING_OR_STRINGS: dict[str, Any] = {"oneOf": [
    {"type": "string"},
    {"type": "array", "items": {"type": "string"}, "minItems": 1},
]}


def text_or_tokens(min_length: int) -> dict[str, Any]:
    """A string, strings, token ids or lists of token ids (``prompt``, embeddings' ``input``)."""
    text = {"type": "string", "minLength": min_length} if min_length else {"type": "string"}
    token = {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
    return {"oneOf": [
        text,
        {"type": "array", "items": text, "minItems": 1},
        {"type": "array", "items": token, "minItems": 1},
        {"type": "array", "items": {"type": "array", "items": token, "minItems": 1}, "minItems": 1},
    ]}


OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}


def choice(*values: str, **kwargs: Any) -> serializers.Field:
    """A string field with one of these values (inline in the description, like OpenAI's ``object`` markers)."""
    field_class = extend_schema_field({"type": "string", "enum": list(values)})(type("Choice", (serializers.CharField,), {}))
    return field_class(**kwargs)


@extend_schema_field(STRING_OR_STRINGS)
class StringOrStrings(serializers.JSONField):
    pass


@extend_schema_field(text_or_tokens(min_length=0))
class TextOrTokens(serializers.JSONField):
    pass


@extend_schema_field(text_or_tokens(min_length=1))
class NonEmptyTextOrTokens(serializers.JSONField):
    pass


def name(**kwargs: Any) -> serializers.Field:
    """A string that must not be empty or blank (the gateway rejects those with a 400)."""
    return serializers.RegexField(r"\S", **kwargs)


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "array", "items": OBJECT}], "nullable": True})
class MessageContent(serializers.JSONField):
    pass


@extend_schema_field({"oneOf": [{"type": "string"}, OBJECT]})
class StringOrObject(serializers.JSONField):
    pass


@extend_schema_field(OBJECT)
class FreeObject(serializers.JSONField):
    pass


@extend_schema_field({"oneOf": [{"type": "array", "items": {"type": "number"}}, {"type": "string", "format": "byte"}]})
class EmbeddingVector(serializers.JSONField):
    pass


# --- Errors -----------------------------------------------------------------------------------

class ErrorDetailSerializer(serializers.Serializer):
    message = serializers.CharField(help_text="What went wrong, for a person to read.")
    type = serializers.CharField(help_text="invalid_request_error, permission_error, rate_limit_error, "
                                           "upstream_error, server_error, ...")
    param = serializers.CharField(allow_null=True, help_text="The request field at fault, if any.")
    code = serializers.CharField(allow_null=True, help_text="A stable machine-readable code, e.g. model_not_found.")


class ErrorSerializer(serializers.Serializer):
    """OpenAI's error envelope: every error response of the gateway has this body."""

    error = ErrorDetailSerializer()


# --- Models and catalogue ---------------------------------------------------------------------

class ModelSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = choice("model")
    created = serializers.IntegerField(help_text="Unix time the registry entry was created.")
    owned_by = serializers.CharField(help_text="The provider kind of the first deployment.")


class ModelListSerializer(serializers.Serializer):
    object = choice("list")
    data = ModelSerializer(many=True)


PRICE_SOURCES = ("entry", "price_list", "price_list_per_model", "input_price", "unknown")


class PriceSourcesSerializer(serializers.Serializer):
    input = choice(*PRICE_SOURCES)
    cached_input = choice(*PRICE_SOURCES)
    output = choice(*PRICE_SOURCES)


class PricingSerializer(serializers.Serializer):
    input_per_million = serializers.FloatField(allow_null=True, help_text="USD per million input tokens; "
                                               "null: unknown, or per requested model (see `sources`).")
    cached_input_per_million = serializers.FloatField(allow_null=True, help_text="USD per million input tokens "
                                                      "read from the provider's prompt cache.")
    output_per_million = serializers.FloatField(allow_null=True)
    currency = choice("USD")
    sources = PriceSourcesSerializer(help_text="Where each price comes from: the registry entry, the price list "
                                               "(for the upstream model), the price list per requested model (a "
                                               "pattern), the input price (no cached price known), or unknown.")
    price_list_date = serializers.CharField(required=False, help_text="The price list's date, when a price "
                                                                      "comes from it.")


class CapabilitiesSerializer(serializers.Serializer):
    # One boolean per capability the registry knows (ModelEntry.CAPABILITIES; a test keeps them equal).
    streaming = serializers.BooleanField()
    tools = serializers.BooleanField()
    vision = serializers.BooleanField()
    embeddings = serializers.BooleanField()


class ModelOptionSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The registry name or pattern.")
    object = choice("model_option")
    pattern = serializers.BooleanField(help_text="True when the name is a pattern such as gpt-*.")
    provider = serializers.CharField(allow_null=True, help_text="Provider kind of the first deployment.")
    providers = serializers.ListField(child=serializers.CharField())
    context_window = serializers.IntegerField(allow_null=True)
    max_output_tokens = serializers.IntegerField(allow_null=True)
    pricing = PricingSerializer()
    capabilities = CapabilitiesSerializer()
    endpoints = serializers.ListField(child=choice("chat.completions", "completions", "embeddings", "responses"),
                                      help_text="The inference endpoints it serves (`responses`: /v1/responses).")
    default = serializers.BooleanField(help_text="Used when a request names no model.")
    available = serializers.BooleanField(help_text="A configured provider serves it and did not fail since "
                                                   "it last worked.")
    endpoints = serializers.ListField(child=serializers.CharField(), help_text="The endpoints (paths under /v1/) "
                                      "that serve it, e.g. chat/completions, messages, embeddings.")


class ModelOptionListSerializer(serializers.Serializer):
    object = choice("list")
    default_model = serializers.CharField(allow_null=True)
    data = ModelOptionSerializer(many=True)


class RouteMatchSerializer(serializers.Serializer):
    entry = serializers.CharField(allow_null=True, help_text="null: no registry entry serves the name (rule "
                                                             "`provider`: sent as it is to the named provider).")
    rule = choice("exact", "pattern", "provider")


class RouteDeploymentSerializer(serializers.Serializer):
    order = serializers.IntegerField()
    provider_account = serializers.CharField()
    provider_kind = serializers.CharField()
    upstream_model = serializers.CharField()
    priority = serializers.IntegerField()
    weight = serializers.IntegerField()
    pricing = PricingSerializer(help_text="What a request served by this deployment is charged at.")


class RouteCheckSerializer(serializers.Serializer):
    object = choice("route_check")
    model = serializers.CharField()
    provider = serializers.CharField(allow_null=True)
    matched = RouteMatchSerializer()
    candidates = RouteMatchSerializer(many=True)
    deployments = RouteDeploymentSerializer(many=True, help_text="In the order they would be tried.")
    ordering = serializers.CharField()
    reason = serializers.CharField()


# --- Chat messages (chat completions and tokenize) ---------------------------------------------

class ChatMessageSerializer(serializers.Serializer):
    role = choice(*sorted(ROLES))
    content = MessageContent(required=False, help_text="Text, or an array of content parts. May be null "
                                                       "only on an assistant message with tool calls.")
    name = serializers.CharField(required=False)
    tool_calls = serializers.ListField(child=FreeObject(), required=False)
    tool_call_id = serializers.CharField(required=False)


# --- Tokenize ---------------------------------------------------------------------------------

class TokenizeRequestSerializer(serializers.Serializer):
    model = name(required=False, help_text="Defaults to the registry's default model.")
    input = StringOrStrings(required=False, help_text="Text to count; give exactly one of this and `messages`.")
    messages = serializers.ListField(child=ChatMessageSerializer(), required=False, min_length=1,
                                     help_text="Chat messages to count with OpenAI's chat overhead.")
    tools = serializers.ListField(child=FreeObject(), required=False, help_text="Tool definitions (with `messages`).")


class TokenizeSerializer(serializers.Serializer):
    object = choice("tokenize")
    model = serializers.CharField()
    tokens = serializers.IntegerField()
    counts = serializers.ListField(child=serializers.IntegerField(), required=False,
                                   help_text="Per string, when `input` was an array.")
    exact = serializers.BooleanField()
    estimated = serializers.BooleanField()
    method = serializers.CharField(help_text="e.g. tiktoken:o200k_base or estimate:o200k_base")
    context_window = serializers.IntegerField(allow_null=True)
    remaining = serializers.IntegerField(allow_null=True, help_text="Negative when the text does not fit.")


# --- Health -----------------------------------------------------------------------------------

class ProviderKindSerializer(serializers.Serializer):
    configured = serializers.BooleanField(help_text="Some active account of this kind has what it needs "
                                                    "(its API key, for kinds that need one).")
    available = serializers.BooleanField(help_text="One of those accounts has not failed since it last worked.")


class ProviderAccountStateSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField()
    active = serializers.BooleanField()
    configured = serializers.BooleanField()
    key_status = serializers.ChoiceField(["ok", "missing", "undecryptable"], help_text=(
        "`undecryptable`: none of GATEWAY_ENCRYPTION_KEYS decrypts the stored key; requests to the account "
        "get 503 `provider_key_undecryptable`."))
    last_success_at = serializers.DateTimeField(allow_null=True)
    last_error_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField(allow_null=True, help_text="The last upstream error's text.")


class LogWriterStateSerializer(serializers.Serializer):
    queued = serializers.IntegerField(help_text="Request-log rows waiting to be written (this worker process).")
    dropped = serializers.IntegerField(help_text="Rows dropped because the queue was full (this worker process).")
    max_queued = serializers.IntegerField(allow_null=True, help_text="The queue's size.")


class CooldownSerializer(serializers.Serializer):
    provider = serializers.CharField(help_text="The provider account's name.")
    model = serializers.CharField(help_text="The upstream model id.")
    until = serializers.DateTimeField(help_text="When the cooldown ends.")
    reason = serializers.CharField(help_text="The failure that started it.")


class HealthSerializer(serializers.Serializer):
    status = choice("ok", "degraded")
    time = serializers.DateTimeField()
    database = choice("ok", "unavailable")
    providers = serializers.DictField(
        child=ProviderKindSerializer(),
        help_text="Every provider kind the gateway knows, by kind (empty while the database does not answer).")
    accounts = ProviderAccountStateSerializer(
        many=True, required=False,
        help_text="Operators only (a staff user's admin session, or the ops token): each provider account.")
    log_writer = LogWriterStateSerializer(required=False, help_text="Operators only: the request-log writer.")
    cooldowns = CooldownSerializer(
        many=True, required=False, allow_null=True,
        help_text="Operators only: the deployments in cooldown, tried only when nothing else is left (null: "
                  "their store, Redis, did not answer).")


# --- Inference: shared parts ------------------------------------------------------------------

class StreamOptionsSerializer(serializers.Serializer):
    include_usage = serializers.BooleanField(required=False, help_text="Send a final chunk with `usage`.")


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField(required=False)
    total_tokens = serializers.IntegerField()


class InferenceRequestSerializer(serializers.Serializer):
    """Fields every inference request may carry (more OpenAI fields pass through)."""

    model = name(required=False, help_text="A registry name or a name a registry pattern matches; the default "
                                           "model when left out.")
    provider = name(required=False, help_text="Gateway extension: keep only the deployments of this provider "
                                              "kind or account name.")
    user = serializers.CharField(required=False)


class SamplingSerializer(InferenceRequestSerializer):
    stream = serializers.BooleanField(required=False, default=False,
                                      help_text="Answer as server-sent events (text/event-stream).")
    stream_options = StreamOptionsSerializer(required=False, help_text="Only allowed with `stream: true`.")
    max_tokens = serializers.IntegerField(required=False, min_value=1)
    temperature = serializers.FloatField(required=False, min_value=0, max_value=2)
    top_p = serializers.FloatField(required=False, min_value=0, max_value=1)
    n = serializers.IntegerField(required=False, min_value=1)
    stop = StringOrStrings(required=False, allow_null=True)
    presence_penalty = serializers.FloatField(required=False, min_value=-2, max_value=2)
    frequency_penalty = serializers.FloatField(required=False, min_value=-2, max_value=2)
    seed = serializers.IntegerField(required=False)


# --- Chat completions -------------------------------------------------------------------------

class ChatCompletionRequestSerializer(SamplingSerializer):
    messages = serializers.ListField(child=ChatMessageSerializer(), min_length=1)
    max_completion_tokens = serializers.IntegerField(required=False, min_value=1)
    tools = serializers.ListField(child=FreeObject(), required=False)
    tool_choice = StringOrObject(required=False)
    response_format = FreeObject(required=False)
    logprobs = serializers.BooleanField(required=False)
    top_logprobs = serializers.IntegerField(required=False, min_value=0, max_value=20)


class AssistantMessageSerializer(serializers.Serializer):
    role = choice("assistant")
    content = serializers.CharField(allow_null=True)
    refusal = serializers.CharField(allow_null=True, required=False)
    tool_calls = serializers.ListField(child=FreeObject(), required=False)


class ChatChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    message = AssistantMessageSerializer()
    finish_reason = serializers.CharField(allow_null=True)
    logprobs = FreeObject(allow_null=True, required=False)


class ChatCompletionSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = choice("chat.completion")
    created = serializers.IntegerField()
    model = serializers.CharField()
    choices = ChatChoiceSerializer(many=True)
    usage = UsageSerializer(required=False)
    system_fingerprint = serializers.CharField(allow_null=True, required=False)


# --- Legacy completions -----------------------------------------------------------------------

class CompletionRequestSerializer(SamplingSerializer):
    prompt = TextOrTokens(help_text="A string, strings, token ids, or lists of token ids.")
    echo = serializers.BooleanField(required=False)
    logprobs = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=5)
    suffix = serializers.CharField(required=False, allow_null=True)
    best_of = serializers.IntegerField(required=False, min_value=1)


class CompletionChoiceSerializer(serializers.Serializer):
    text = serializers.CharField(allow_blank=True)
    index = serializers.IntegerField()
    logprobs = FreeObject(allow_null=True, required=False)
    finish_reason = serializers.CharField(allow_null=True)


class CompletionSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = choice("text_completion")
    created = serializers.IntegerField()
    model = serializers.CharField()
    choices = CompletionChoiceSerializer(many=True)
    usage = UsageSerializer(required=False)


# --- Embeddings -------------------------------------------------------------------------------

class EmbeddingRequestSerializer(InferenceRequestSerializer):
    input = NonEmptyTextOrTokens(help_text="A string, strings, token ids, or lists of token ids; no empty string.")
    encoding_format = choice("float", "base64", required=False,
                                              help_text="base64: little-endian float32, as the official SDK asks.")
    dimensions = serializers.IntegerField(required=False, min_value=1)


class EmbeddingSerializer(serializers.Serializer):
    object = choice("embedding")
    index = serializers.IntegerField()
    embedding = EmbeddingVector()


class EmbeddingListSerializer(serializers.Serializer):
    object = choice("list")
    data = EmbeddingSerializer(many=True)
    model = serializers.CharField()
    usage = UsageSerializer(required=False)
