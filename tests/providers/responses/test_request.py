"""Responses requests as chat completion bodies (pure translation, no server)."""

from __future__ import annotations

import orjson
import pytest

from providers.base import ProviderError, Usage
from providers.responses.request import CUSTOM_INPUT, chat_body
from providers.responses.response import from_chat


def test_input_items_become_chat_messages_with_one_assistant_turn_per_call() -> None:
    chat, _ = chat_body({"instructions": "Be brief.", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "look"},
                                     {"type": "input_image", "image_url": "https://x/cat.png", "detail": "low"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Calling."}]},
        {"type": "function_call", "call_id": "c1", "name": "a", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "b", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "one"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "two"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
    ]}, "Test")
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "look"},
                                     {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}}]},
        {"role": "assistant", "content": "Calling.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
            {"id": "c2", "type": "function", "function": {"name": "b", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": "two"},
    ]


def test_settings_map_to_their_chat_equivalents() -> None:
    chat, _ = chat_body({"input": "hi", "max_output_tokens": 50, "temperature": 0.3, "top_p": 0.9,
                         "parallel_tool_calls": False, "user": "u1", "reasoning": {"effort": "low", "summary": "auto"},
                         "text": {"format": {"type": "json_schema", "name": "r", "schema": {"type": "object"},
                                             "strict": True}},
                         "store": True, "metadata": {"k": "v"}, "include": ["reasoning.encrypted_content"],
                         "stream": True}, "Test")
    assert chat == {"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 50, "temperature": 0.3,
                    "top_p": 0.9, "parallel_tool_calls": False, "user": "u1", "reasoning_effort": "low",
                    "response_format": {"type": "json_schema", "json_schema": {
                        "name": "r", "schema": {"type": "object"}, "strict": True}},
                    "stream": True, "stream_options": {"include_usage": True}}
    chat, _ = chat_body({"input": "hi", "text": {"format": {"type": "json_object"}}}, "Test")
    assert chat["response_format"] == {"type": "json_object"}


def test_namespaced_and_custom_tools_are_flattened_and_their_calls_come_back_as_they_were_offered() -> None:
    tools = [{"type": "function", "name": "plain", "parameters": {"type": "object"}, "strict": True},
             {"type": "namespace", "name": "crm", "description": "CRM", "tools": [
                 {"type": "function", "name": "lookup", "parameters": {"type": "object"}}]},
             {"type": "custom", "name": "shell", "description": "Runs a command"}]
    chat, context = chat_body({"input": "hi", "tools": tools, "tool_choice": {"type": "function", "name": "lookup",
                                                                               "namespace": "crm"}}, "Test")
    assert [t["function"]["name"] for t in chat["tools"]] == ["plain", "crm__lookup", "shell"]
    assert chat["tools"][2]["function"]["parameters"] == CUSTOM_INPUT
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "crm__lookup"}}
    answer = orjson.dumps({"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "crm__lookup", "arguments": '{"id": 1}'}},
        {"id": "c2", "type": "function", "function": {"name": "shell", "arguments": '{"input": "ls -l"}'}}]},
        "finish_reason": "tool_calls"}]})
    output = orjson.loads(from_chat(answer, Usage(1, 2, 3), {"tools": tools}, context, "m"))["output"]
    assert [(o["type"], o.get("namespace"), o["name"]) for o in output] == [
        ("function_call", "crm", "lookup"), ("custom_tool_call", None, "shell")]
    assert output[1]["input"] == "ls -l" and output[0]["arguments"] == '{"id": 1}'
    # ... and when they are sent back, they are the same chat tool calls again.
    again, _ = chat_body({"input": [*output, {"type": "custom_tool_call_output", "call_id": "c2", "output": "ok"}],
                          "tools": tools}, "Test")
    calls = again["messages"][0]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["crm__lookup", "shell"]
    assert orjson.loads(calls[1]["function"]["arguments"]) == {"input": "ls -l"}


@pytest.mark.parametrize("body, param", [
    ({"input": "x", "tools": [{"type": "file_search", "vector_store_ids": ["v"]}]}, "tools[0].type"),
    ({"input": "x", "tools": [{"type": "custom", "name": "p", "format": {"type": "grammar"}}]}, "tools[0].format"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, "input[0].content[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}, "input[0].content[0].image_url"),
    ({"input": "x", "text": {"format": {"type": "grammar"}}}, "text.format.type"),
    ({"input": "x", "conversation": "conv_1"}, "conversation"),
    ({"input": "x", "background": True}, "background"),
    ({"input": "x", "tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
    ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
    ({"instructions": "only instructions"}, "input"),
])
def test_what_chat_cannot_express_is_a_400_naming_the_field(body: dict, param: str) -> None:
    with pytest.raises(ProviderError) as caught:
        chat_body(body, "Test")
    assert caught.value.status == 400 and caught.value.param == param


def test_an_optional_web_search_tool_is_left_out_the_model_answers_without_it() -> None:
    """Codex CLI offers {"type": "web_search"} on every request: refusing it would refuse Codex."""
    chat, _ = chat_body({"input": "x", "tools": [{"type": "web_search", "external_web_access": False},
                                                 {"type": "function", "name": "shell", "parameters": {}}]}, "Test")
    assert [t["function"]["name"] for t in chat["tools"]] == ["shell"]
