"""Checks on the request fields the gateway itself relies on; everything else passes through."""

from __future__ import annotations

from typing import Any

from gateway.errors import invalid_request

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def json_object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise invalid_request("The request body must be a JSON object.", code="invalid_json")
    return data


def optional_string(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise invalid_request(f"'{name}' must be a non-empty string.", param=name, code="invalid_type")
    return value


def stream_flags(body: dict[str, Any]) -> tuple[bool, bool]:
    """(stream, include_usage) as the client asked for them."""
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise invalid_request("'stream' must be a boolean.", param="stream", code="invalid_type")
    options = body.get("stream_options")
    if options is None:
        return stream, False
    if not isinstance(options, dict):
        raise invalid_request("'stream_options' must be an object.", param="stream_options", code="invalid_type")
    if not stream:
        raise invalid_request(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream_options"
        )
    include_usage = options.get("include_usage", False)
    if include_usage is not None and not isinstance(include_usage, bool):
        raise invalid_request("'stream_options.include_usage' must be a boolean.",
                              param="stream_options.include_usage", code="invalid_type")
    return True, bool(include_usage)


def chat_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if messages is None:
        raise invalid_request("Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter")
    if not isinstance(messages, list):
        raise invalid_request("'messages' must be an array of message objects.", param="messages", code="invalid_type")
    if not messages:
        raise invalid_request("'messages' must contain at least one message.", param="messages", code="empty_array")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid_request(f"'messages[{i}]' must be an object.", param=f"messages[{i}]", code="invalid_type")
        role = message.get("role")
        if not isinstance(role, str):
            raise invalid_request(f"Missing required parameter: 'messages[{i}].role'.", param=f"messages[{i}].role",
                                  code="missing_required_parameter")
        if role not in ROLES:
            raise invalid_request(
                f"Invalid value: '{role[:40]}'. Supported values are: {', '.join(sorted(ROLES))}.",
                param=f"messages[{i}].role", code="invalid_value",
            )
        content = message.get("content")
        if content is None and not (role == "assistant" and (message.get("tool_calls") or message.get("function_call"))):
            raise invalid_request(f"Missing required parameter: 'messages[{i}].content'.",
                                  param=f"messages[{i}].content", code="missing_required_parameter")
        if content is not None and not isinstance(content, str | list):
            raise invalid_request(f"'messages[{i}].content' must be a string or an array of content parts.",
                                  param=f"messages[{i}].content", code="invalid_type")
    return messages


def _strings_or_tokens(value: Any) -> bool:
    """A string, a list of strings, a list of token ids, or a list of token-id lists."""
    if isinstance(value, str):
        return True
    if not isinstance(value, list) or not value:
        return False
    if all(isinstance(v, str) for v in value):
        return True
    if all(_token_id(v) for v in value):
        return True
    return all(isinstance(v, list) and v and all(_token_id(t) for t in v) for v in value)


def _token_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32


def _text_or_tokens(body: dict[str, Any], name: str) -> Any:
    """The required field ``name``: a string, strings, token ids, or lists of token ids."""
    value = body.get(name)
    if value is None:
        raise invalid_request(f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
    if not _strings_or_tokens(value):
        raise invalid_request(f"'{name}' must be a string, an array of strings, or an array of token ids.",
                              param=name, code="invalid_type")
    return value


def completion_prompt(body: dict[str, Any]) -> None:
    _text_or_tokens(body, "prompt")


def embeddings_input(body: dict[str, Any]) -> None:
    value = _text_or_tokens(body, "input")
    if value == "" or isinstance(value, list) and any(v == "" for v in value):
        raise invalid_request("'input' cannot contain an empty string.", param="input", code="invalid_value")
    encoding = body.get("encoding_format")
    if encoding not in (None, "float", "base64"):
        raise invalid_request("'encoding_format' must be 'float' or 'base64'.", param="encoding_format",
                              code="invalid_value")
    if body.get("stream"):
        raise invalid_request("Embeddings cannot be streamed.", param="stream", code="invalid_value")


def responses_body(body: dict[str, Any]) -> None:
    """The Responses API fields the gateway itself reads (input, store, previous_response_id, limits)."""
    value = body.get("input")
    if value is None and body.get("previous_response_id") is None:
        raise invalid_request("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    if value is not None and not isinstance(value, str | list):
        raise invalid_request("'input' must be a string or an array of input items.", param="input",
                              code="invalid_type")
    if isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise invalid_request(f"'input[{i}]' must be an object.", param=f"input[{i}]", code="invalid_type")
    for name in ("store", "parallel_tool_calls"):
        if body.get(name) is not None and not isinstance(body[name], bool):
            raise invalid_request(f"'{name}' must be a boolean.", param=name, code="invalid_type")
    optional_string(body, "previous_response_id")
    tokens = body.get("max_output_tokens")
    if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1):
        raise invalid_request("'max_output_tokens' must be a positive integer.", param="max_output_tokens",
                              code="invalid_value")
    for name in ("metadata", "text", "reasoning"):
        if body.get(name) is not None and not isinstance(body[name], dict):
            raise invalid_request(f"'{name}' must be an object.", param=name, code="invalid_type")
    if body.get("tools") is not None and not isinstance(body["tools"], list):
        raise invalid_request("'tools' must be an array.", param="tools", code="invalid_type")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str | list):
        raise invalid_request("'instructions' must be a string.", param="instructions", code="invalid_type")
