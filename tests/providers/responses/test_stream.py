"""Chat completion chunks as Responses events (pure translation, no server)."""

from __future__ import annotations

import orjson
import pytest

from providers.base import ProviderError
from providers.openai import PassthroughStream
from providers.responses.stream import ResponsesStream
from tests.openai_schema import assert_valid

CONTEXT = {"id": "resp_1", "created_at": 1, "names": {}}


def chunk(delta: dict | None = None, finish: str | None = None, **extra: object) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return b"data: " + orjson.dumps({"id": "c", "object": "chat.completion.chunk", "choices": choices, **extra}) + b"\n\n"


def events(data: bytes) -> list[dict]:
    found = [orjson.loads(line[5:]) for line in data.split(b"\n") if line.startswith(b"data:")]
    for event in found:
        assert_valid("ResponseStreamEvent", event)
    return found


def test_text_then_a_tool_call_is_two_output_items_in_order() -> None:
    stream = ResponsesStream(PassthroughStream(True), {"input": "x"}, CONTEXT, "m")
    out = stream.feed(chunk({"role": "assistant", "content": "Hel"}) + chunk({"content": "lo"}) + chunk(
        {"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": '{"a"'}}]}) + chunk(
        {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}, "tool_calls") + chunk(
        None, usage={"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7,
                     "prompt_tokens_details": {"cached_tokens": 1}}) + b"data: [DONE]\n\n")
    found = events(out)
    assert [e["sequence_number"] for e in found] == list(range(len(found)))
    assert [e["type"] for e in found] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.output_item.added",
        "response.function_call_arguments.delta", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    final = found[-1]["response"]
    assert [item["type"] for item in final["output"]] == ["message", "function_call"]
    assert final["output"][0]["content"][0]["text"] == "Hello" and final["output"][1]["arguments"] == '{"a": 1}'
    assert final["usage"]["input_tokens_details"]["cached_tokens"] == 1 and stream.finished
    assert orjson.loads(stream.answer) == final


def test_a_length_cut_answer_ends_with_response_incomplete() -> None:
    stream = ResponsesStream(PassthroughStream(True), {"input": "x", "max_output_tokens": 1}, CONTEXT, "m")
    found = events(stream.feed(chunk({"content": "Hi"}, "length") + b"data: [DONE]\n\n"))
    assert found[-1]["type"] == "response.incomplete"
    assert found[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_an_error_inside_the_chat_stream_becomes_response_failed_with_the_text_so_far() -> None:
    stream = ResponsesStream(PassthroughStream(True), {"input": "x"}, CONTEXT, "m")
    sent = stream.feed(chunk({"content": "Partial"}))
    with pytest.raises(ProviderError) as caught:
        stream.feed(b'data: {"error": {"message": "overloaded", "code": "server_error"}}\n\n')
    found = events(sent + stream.fail(caught.value))
    assert found[-1]["type"] == "response.failed"
    failed = found[-1]["response"]
    assert_valid("Response", failed)
    assert failed["error"] == {"code": "server_error", "message": "overloaded"}
    assert failed["output"][0]["status"] == "incomplete" and failed["output"][0]["content"][0]["text"] == "Partial"
    assert stream.fail(caught.value) == b""  # one end only


def test_a_failure_before_any_event_still_starts_the_response() -> None:
    stream = ResponsesStream(PassthroughStream(True), {"input": "x"}, CONTEXT, "m")
    found = events(stream.fail(ProviderError(504, "timed out", "upstream_error", "upstream_timeout")))
    assert [e["type"] for e in found] == ["response.created", "response.in_progress", "response.failed"]
