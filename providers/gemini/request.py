"""OpenAI chat request -> Gemini ``GenerateContentRequest`` (pure translation, no I/O).

Fields Gemini has and OpenAI means the same by are mapped; fields that do not change the answer
are dropped; fields that would change it and that Gemini cannot honour are refused with a 400
naming the parameter, as are fields not known here (``PARAMETERS``).
"""

from __future__ import annotations

import mimetypes
from typing import Any

import orjson

from providers.errors import ProviderError
from providers.parameters import UNSUPPORTED_VALUE, ParameterPolicy, Refuse, invalid, other_than, refusal

LABEL = "Google Gemini"

# Google's OpenAI-compatibility guide maps reasoning effort to these thinking budgets.
THINKING_BUDGETS = {"none": 0, "low": 1024, "medium": 8192, "high": 24576}

PARAMETERS = ParameterPolicy(
    mapped=frozenset({
        "messages", "stream", "temperature", "top_p", "top_k", "n", "seed", "presence_penalty", "frequency_penalty",
        "max_tokens", "max_completion_tokens", "stop", "response_format", "tools", "tool_choice", "reasoning_effort",
    }),
    # They do not change the answer's content: accepted and not sent.
    dropped=frozenset({
        "stream_options", "user", "safety_identifier", "metadata", "store", "service_tier", "prompt_cache_key",
        "prompt_cache_retention", "prompt_cache_options", "parallel_tool_calls", "prediction", "top_logprobs",
    }),
    # No equivalent in Gemini, and they change the answer: refused unless false or empty.
    refused={
        **{name: Refuse(other_than(False, {}, []), "Gemini has no equivalent.") for name in (
            "audio", "logit_bias", "logprobs", "functions", "function_call", "verbosity", "web_search_options",
            "moderation")},
        "modalities": Refuse(other_than(["text"]), "only text output is available.", code=UNSUPPORTED_VALUE),
    },
    refused_values={"reasoning_effort": Refuse(lambda effort: effort not in THINKING_BUDGETS,
                                               f"use one of {', '.join(THINKING_BUDGETS)}.", code=UNSUPPORTED_VALUE)},
    unknown=Refuse(lambda value: value is not None),  # a null field counts as not sent
)

_SIMPLE_CONFIG = (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"), ("n", "candidateCount"),
                  ("seed", "seed"), ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty"))
TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}
FILES_API = "https://generativelanguage.googleapis.com/"
SIGNATURE_MARK = ".ts."  # '.' is outside the base64 alphabets, so the split is unambiguous


def _unsupported(param: str, why: str) -> ProviderError:
    """A value Gemini cannot take (the field itself is mapped)."""
    return refusal(LABEL, param, why, code=UNSUPPORTED_VALUE)


def _data_url(url: str, where: str) -> dict[str, Any]:
    header, comma, data = url[5:].partition(",")
    if not comma or not header.endswith(";base64"):
        raise _unsupported(where, "only base64 data: URLs can be sent inline.")
    return {"inlineData": {"mimeType": header.split(";")[0] or "application/octet-stream", "data": data}}


def _image(url: Any, where: str) -> dict[str, Any]:
    if not isinstance(url, str) or not url:
        raise invalid(where, f"'{where}' must be a URL string.")
    if url.startswith("data:"):
        return _data_url(url, where)
    if url.startswith(FILES_API):  # a file uploaded to Google's Files API
        part: dict[str, Any] = {"fileUri": url}
        mime = mimetypes.guess_type(url.split("?")[0])[0]
        if mime:
            part["mimeType"] = mime
        return {"fileData": part}
    raise _unsupported(where, "Gemini does not fetch web URLs; send the image as a base64 data: URL.")


def _file(file: Any, where: str) -> dict[str, Any]:
    file = file if isinstance(file, dict) else {}
    data = file.get("file_data")
    if not isinstance(data, str) or not data:
        raise _unsupported(f"{where}.file_id", "only inline file_data can be sent.")
    if data.startswith("data:"):
        return _data_url(data, f"{where}.file_data")
    mime = mimetypes.guess_type(str(file.get("filename") or ""))[0]
    if not mime:
        raise invalid(f"{where}.filename", "A file's type must be known: send file_data as a data: URL.")
    return {"inlineData": {"mimeType": mime, "data": data}}


def _parts(content: Any, where: str, text_only: bool = False) -> list[dict[str, Any]]:
    """Gemini parts for an OpenAI message ``content`` (a string or an array of parts)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        here = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "refusal"):
            if part.get(kind):
                parts.append({"text": str(part[kind])})
        elif text_only:
            raise _unsupported(f"{here}.type", "this role takes text only.")
        elif kind == "image_url":
            parts.append(_image((part.get("image_url") or {}).get("url"), f"{here}.image_url.url"))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            mime = AUDIO_TYPES.get(audio.get("format"))
            if mime is None:
                raise invalid(f"{here}.input_audio.format", "Audio format must be 'wav' or 'mp3'.")
            parts.append({"inlineData": {"mimeType": mime, "data": audio.get("data") or ""}})
        elif kind == "file":
            parts.append(_file(part.get("file"), f"{here}.file"))
        else:
            raise _unsupported(f"{here}.type", f"content parts of type {str(kind)[:40]!r} cannot be sent.")
    return parts


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return content or ""


def _signature(call_id: Any) -> str | None:
    if isinstance(call_id, str) and SIGNATURE_MARK in call_id:
        return call_id.split(SIGNATURE_MARK, 1)[1] or None
    return None


def _function_calls(message: dict[str, Any], i: int, names: dict[str, str]) -> list[dict[str, Any]]:
    parts = []
    for j, call in enumerate(message.get("tool_calls") or []):
        where = f"messages[{i}].tool_calls[{j}]"
        if not isinstance(call, dict) or call.get("type", "function") != "function":
            raise _unsupported(f"{where}.type", "only function tool calls can be replayed.")
        function = call.get("function") or {}
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise invalid(f"{where}.function.name", f"'{where}.function.name' must be a non-empty string.")
        arguments = function.get("arguments") or "{}"
        try:
            args = orjson.loads(arguments) if isinstance(arguments, str) else arguments
        except orjson.JSONDecodeError:
            args = None
        if not isinstance(args, dict):
            raise invalid(f"{where}.function.arguments", "Tool call arguments must be a JSON object.")
        part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
        if signature := _signature(call.get("id")):
            part["thoughtSignature"] = signature
        names[str(call.get("id"))] = name
        parts.append(part)
    return parts


def _tool_response(content: Any) -> dict[str, Any]:
    """Gemini wants an object: a JSON object result goes as is, anything else under ``result``."""
    text = _text(content)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"result": text}


def contents_of(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(systemInstruction parts, contents) for OpenAI messages."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, from earlier assistant turns
    tool_turn = False  # the last content holds function responses (parallel results share one turn)
    for i, message in enumerate(messages):
        role = message.get("role")
        where = f"messages[{i}].content"
        if role in ("system", "developer"):
            system += _parts(message.get("content"), where, text_only=True)
            continue
        if role == "function":
            raise _unsupported(f"messages[{i}].role", "the deprecated 'function' role cannot be sent; use tools.")
        if role == "tool":
            name = names.get(str(message.get("tool_call_id")))
            if name is None:
                raise invalid(f"messages[{i}].tool_call_id",
                               f"'messages[{i}].tool_call_id' does not match a tool call of an earlier assistant message.")
            part = {"functionResponse": {"name": name, "response": _tool_response(message.get("content"))}}
            if tool_turn:
                contents[-1]["parts"].append(part)
            else:
                contents.append({"role": "user", "parts": [part]})
            tool_turn = True
            continue
        tool_turn = False
        if role == "assistant":
            parts = _parts(message.get("content"), where) + _function_calls(message, i, names)
            if parts:
                contents.append({"role": "model", "parts": parts})
        elif parts := _parts(message.get("content"), where):
            contents.append({"role": "user", "parts": parts})
    if not contents:
        raise invalid("messages", f"{LABEL} needs at least one user or assistant message with content.")
    return system, contents


def _response_format(value: Any, config: dict[str, Any]) -> None:
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return
    if kind == "json_object":
        config["responseMimeType"] = "application/json"
    elif kind == "json_schema":
        config["responseMimeType"] = "application/json"
        schema = (value.get("json_schema") or {}).get("schema")
        if schema is not None:
            config["responseJsonSchema"] = schema
    else:
        raise _unsupported("response_format.type", f"{str(kind)[:40]!r} is not a format Gemini has.")


def _tools(tools: Any) -> list[dict[str, Any]]:
    declarations = []
    for j, tool in enumerate(tools if isinstance(tools, list) else []):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise _unsupported(f"tools[{j}].type", "only function tools can be offered.")
        function = tool.get("function") or {}
        if not isinstance(function.get("name"), str) or not function["name"]:
            raise invalid(f"tools[{j}].function.name", f"'tools[{j}].function.name' must be a non-empty string.")
        declaration: dict[str, Any] = {"name": function["name"]}
        if function.get("description"):
            declaration["description"] = function["description"]
        if function.get("parameters") is not None:  # OpenAI sends JSON Schema, which this field takes whole
            declaration["parametersJsonSchema"] = function["parameters"]
        declarations.append(declaration)
    return declarations


def _tool_config(choice: Any, declarations: list[dict[str, Any]]) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, str) and choice in TOOL_MODES:
        return {"functionCallingConfig": {"mode": TOOL_MODES[choice]}}
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "function":
        name = (choice.get("function") or {}).get("name")
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    if kind == "allowed_tools":
        allowed = choice.get("allowed_tools") or {}
        names = [(t.get("function") or {}).get("name") for t in allowed.get("tools") or [] if isinstance(t, dict)]
        if allowed.get("mode") == "required":
            return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": names}}
        declarations[:] = [d for d in declarations if d["name"] in names]  # "auto": offer only those
        return {"functionCallingConfig": {"mode": "AUTO"}}
    raise _unsupported("tool_choice", "only 'auto', 'none', 'required', a function or allowed function tools.")


def generation_config(body: dict[str, Any], max_output_tokens: int | None) -> dict[str, Any]:
    config = {dst: body[src] for src, dst in _SIMPLE_CONFIG if body.get(src) is not None}
    limit = body.get("max_completion_tokens")
    limit = limit if limit is not None else body.get("max_tokens")
    limit = limit if limit is not None else max_output_tokens
    if limit is not None:
        config["maxOutputTokens"] = limit
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else stop
    if body.get("response_format") is not None:
        _response_format(body["response_format"], config)
    effort = body.get("reasoning_effort")
    if effort is not None:  # PARAMETERS refuses efforts that have no budget
        config["thinkingConfig"] = {"thinkingBudget": THINKING_BUDGETS[effort]}
    return config


def request_body(body: dict[str, Any], max_output_tokens: int | None) -> dict[str, Any]:
    """The ``GenerateContentRequest`` for an OpenAI chat completion body."""
    PARAMETERS.check(body, LABEL)
    system, contents = contents_of(body["messages"])
    payload: dict[str, Any] = {"contents": contents}
    if system:
        payload["systemInstruction"] = {"parts": system}
    config = generation_config(body, max_output_tokens)
    if config:
        payload["generationConfig"] = config
    declarations = _tools(body.get("tools"))
    tool_config = _tool_config(body.get("tool_choice"), declarations) if declarations else None
    if declarations:
        payload["tools"] = [{"functionDeclarations": declarations}]
    if tool_config:
        payload["toolConfig"] = tool_config
    return payload
