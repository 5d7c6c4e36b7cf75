"""Properties of every provider adapter, checked with hypothesis (bounded: a few seconds in all).

Only the public surface of providers/ is used (``providers.registry.ADAPTERS`` and ``adapter_for``,
``providers.base.Account`` and ``ProviderError``), so the properties hold whatever the modules
behind it look like:

(a) any valid OpenAI chat request either translates into an upstream request (with a JSON body) or
    is refused with ``ProviderError(400)``: never another exception;
(b) a stream translator fed a recorded upstream stream split at arbitrary byte positions produces
    exactly the bytes it produces when fed the stream whole;
(c) fed malformed streams (random bytes, truncated JSON, values of the wrong type) it raises
    ``ProviderError`` or nothing: never KeyError, TypeError, ...
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import time
import traceback
import uuid
from collections.abc import Iterator
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from providers.base import Account, ProviderError
from providers.registry import ADAPTERS, adapter_for

KINDS = sorted(ADAPTERS)

# Bugs these properties found, each fixed (providers/errors.reads_upstream: a malformed answer is a
# 502 ProviderError; providers/base.count: a token count that is not a number is one too): their
# minimal examples are the regression tests at the end of this file.

# Derandomized: the same examples on every run, so that a property a known bug breaks fails every time
# and one that holds does not start failing by chance in CI; no shrinking phase, to stay fast.
BOUNDED = settings(max_examples=60, deadline=None, derandomize=True, database=None, report_multiple_bugs=False,
                   phases=[Phase.explicit, Phase.reuse, Phase.generate], suppress_health_check=[HealthCheck.too_slow])



def adapter(kind: str) -> Any:
    options = {"account_id": "acc123"} if kind == "cloudflare" else {}
    return adapter_for(Account(f"{kind}-props", kind, "http://127.0.0.1:9/v1", "sk-props-0123456789", options))


# --- (a) valid OpenAI chat requests ----------------------------------------------------------------

text = st.text(max_size=12)
name = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,11}", fullmatch=True)
image_url = st.sampled_from(["https://example.com/cat.png", "data:image/png;base64,iVBORw0KGgo="])
text_part = st.builds(lambda t: {"type": "text", "text": t}, text)
image_part = st.builds(lambda url, detail: {"type": "image_url", "image_url": {"url": url, **detail}},
                       image_url, st.sampled_from([{}, {"detail": "low"}, {"detail": "auto"}]))
user_content = st.one_of(text, st.lists(st.one_of(text_part, image_part), min_size=1, max_size=3))
plain_content = st.one_of(text, st.lists(text_part, min_size=1, max_size=2))
arguments = st.dictionaries(name, st.one_of(st.integers(-5, 5), text), max_size=2).map(lambda d: orjson.dumps(d).decode())


@st.composite
def conversation(draw: st.DrawFn, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """system? then turns of user / assistant (text, or tool calls answered by tool messages)."""
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": draw(st.sampled_from(["system", "developer"])), "content": draw(plain_content)})
    tool_names = [t["function"]["name"] for t in tools]
    calls = itertools.count()
    for _ in range(draw(st.integers(1, 3))):
        messages.append({"role": "user", "content": draw(user_content),
                         **({"name": draw(name)} if draw(st.booleans()) else {})})
        if not draw(st.booleans()):
            continue
        if tool_names and draw(st.booleans()):
            ids = [f"call_{next(calls)}" for _ in range(draw(st.integers(1, 2)))]
            messages.append({"role": "assistant", "content": draw(st.one_of(st.none(), text)), "tool_calls": [
                {"id": call_id, "type": "function",
                 "function": {"name": draw(st.sampled_from(tool_names)), "arguments": draw(arguments)}}
                for call_id in ids]})
            messages.extend({"role": "tool", "tool_call_id": call_id, "content": draw(plain_content)} for call_id in ids)
        else:
            messages.append({"role": "assistant", "content": draw(plain_content)})
    return messages


tool = st.builds(
    lambda function_name, description, properties: {"type": "function", "function": {
        "name": function_name, **description,
        "parameters": {"type": "object", "properties": {p: {"type": "string"} for p in properties}}}},
    name, st.sampled_from([{}, {"description": "A tool."}]), st.lists(name, max_size=2))


@st.composite
def chat_request(draw: st.DrawFn) -> dict[str, Any]:
    tools = draw(st.lists(tool, max_size=2, unique_by=lambda t: t["function"]["name"]))
    body: dict[str, Any] = {"messages": draw(conversation(tools))}
    if tools:
        body["tools"] = tools
        if draw(st.booleans()):
            body["tool_choice"] = draw(st.one_of(
                st.sampled_from(["none", "auto", "required"]),
                st.sampled_from(tools).map(lambda t: {"type": "function", "function": {"name": t["function"]["name"]}})))
    if draw(st.booleans()):
        body["temperature"] = draw(st.floats(0, 2, allow_nan=False))
    if draw(st.booleans()):
        body[draw(st.sampled_from(["max_tokens", "max_completion_tokens"]))] = draw(st.integers(1, 4096))
    if draw(st.booleans()):
        body["stream"] = draw(st.booleans())
        if body["stream"] and draw(st.booleans()):
            body["stream_options"] = {"include_usage": draw(st.booleans())}
    return body


@pytest.mark.parametrize("kind", KINDS)
@BOUNDED
@given(body=chat_request(), max_output_tokens=st.sampled_from([None, 1024]))
def test_a_valid_chat_request_translates_or_is_refused_with_a_400(kind: str, body: dict[str, Any],
                                                                  max_output_tokens: int | None) -> None:
    try:
        request = adapter(kind).chat_request(orjson.loads(orjson.dumps(body)), "upstream-model", max_output_tokens)
    except ProviderError as exc:
        assert exc.status == 400, (exc.status, exc.message)
        return
    assert request.method == "POST" and request.url.startswith("http://127.0.0.1:9/")
    assert request.body is None or isinstance(orjson.loads(request.body), dict)


# --- Recorded upstream streams, per provider kind --------------------------------------------------

OPENAI_STREAM = (
    b'data: {"id":"chatcmpl-ABfw031m","object":"chat.completion.chunk","created":1727346168,"model":"gpt-4o-2024-08-06",'
    b'"system_fingerprint":"fp_5050236cbd","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
    b'"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
    b'data: {"id":"chatcmpl-ABfw031m","object":"chat.completion.chunk","created":1727346168,"model":"gpt-4o-2024-08-06",'
    b'"system_fingerprint":"fp_5050236cbd","choices":[{"index":0,"delta":{"content":"I\'m"},"logprobs":null,'
    b'"finish_reason":null}],"usage":null}\n\n'
    b'data: {"id":"chatcmpl-ABfw031m","object":"chat.completion.chunk","created":1727346168,"model":"gpt-4o-2024-08-06",'
    b'"system_fingerprint":"fp_5050236cbd","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],'
    b'"usage":null}\n\n'
    b'data: {"id":"chatcmpl-ABfw031m","object":"chat.completion.chunk","created":1727346168,"model":"gpt-4o-2024-08-06",'
    b'"system_fingerprint":"fp_5050236cbd","choices":[],"usage":{"prompt_tokens":14,"completion_tokens":30,'
    b'"total_tokens":44,"completion_tokens_details":{"reasoning_tokens":0}}}\n\n'
    b"data: [DONE]\n\n"
)
CLOUDFLARE_STREAM = (
    b'data: {"response":"Hello"}\n\n'
    b'data: {"response":" world","p":"abdefgh"}\n\n'
    b'data: {"tool_calls":[{"id":"call123","type":"function","index":0,"function":{"name":"get_weather",'
    b'"arguments":"{\\"location\\": \\"London\\"}"}}]}\n\n'
    b'data: {"finish_reason":"tool_calls"}\n\n'
    b'data: {"response":"","usage":{"prompt_tokens":418,"completion_tokens":41,"total_tokens":459}}\n\n'
    b"data: [DONE]\n\n"
)
GEMINI_STREAM = (
    b'data: {"candidates": [{"content": {"parts": [{"text": "The"}],"role": "model"}}],"usageMetadata": '
    b'{"promptTokenCount": 7,"totalTokenCount": 7},"modelVersion": "gemini-3.1-flash-lite","responseId": "r1"}\r\n\r\n'
    b'data: {"candidates": [{"content": {"parts": [{"functionCall": {"name": "get_weather", "args": '
    b'{"city": "Paris"}}}],"role": "model"}}],"responseId": "r1"}\r\n\r\n'
    b'data: {"candidates": [{"content": {"parts": [{"text": " is **Cheyenne**.\\n"}],"role": "model"},'
    b'"finishReason": "STOP"}],"usageMetadata": {"promptTokenCount": 7,"candidatesTokenCount": 10,'
    b'"totalTokenCount": 17},"modelVersion": "gemini-3.1-flash-lite","responseId": "r1"}\r\n\r\n'
)
ANTHROPIC_STREAM = b"""event: message_start
data: {"type":"message_start","message":{"id":"msg_01Tool","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-20250514","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2,"cache_read_input_tokens":100}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me check."}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01NRLabsLyVHZPKxbKvkfSMn","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\\"locati"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"on\\": \\"Paris\\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":40}}

event: message_stop
data: {"type":"message_stop"}

"""
STREAMS = {"openai": OPENAI_STREAM, "openai_compatible": OPENAI_STREAM, "cloudflare": CLOUDFLARE_STREAM,
           "gemini": GEMINI_STREAM, "anthropic": ANTHROPIC_STREAM}


def test_every_provider_kind_has_a_recorded_stream() -> None:
    assert set(STREAMS) == set(ADAPTERS)


@contextlib.contextmanager
def reproducible() -> Iterator[None]:
    """The same ids and timestamps in every run of a translator (they are random or the clock's)."""
    counter = itertools.count()
    with mock.patch.object(uuid, "uuid4", side_effect=lambda: uuid.UUID(int=next(counter))), \
            mock.patch.object(time, "time", return_value=1_700_000_000.0):
        yield


def translate(kind: str, pieces: list[bytes], include_usage: bool) -> bytes:
    with reproducible():
        translator = adapter(kind).chat_stream("public-model", include_usage)
        return b"".join(translator.feed(piece) for piece in pieces) + translator.close()


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted({c % (len(data) + 1) for c in cuts}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize("kind", KINDS)
@BOUNDED
@given(cuts=st.lists(st.integers(0, 10_000), max_size=12), include_usage=st.booleans(), crlf=st.booleans())
def test_a_stream_split_anywhere_translates_as_it_does_whole(kind: str, cuts: list[int], include_usage: bool,
                                                             crlf: bool) -> None:
    data = STREAMS[kind]
    if crlf:
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    whole = translate(kind, [data], include_usage)
    assert b"data: " in whole
    assert translate(kind, split(data, cuts), include_usage) == whole


# --- (c) malformed streams ------------------------------------------------------------------------

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)


def recorded_events(kind: str) -> list[tuple[bytes, Any]]:
    """(the event's lines before ``data:``, its data as JSON, or the raw bytes when not JSON) per event."""
    events = []
    for event in STREAMS[kind].replace(b"\r\n", b"\n").split(b"\n\n"):
        if not event.strip():
            continue
        head, _, data = event.rpartition(b"data: ")
        try:
            events.append((head, orjson.loads(data)))
        except orjson.JSONDecodeError:
            events.append((head, data))
    return events


@st.composite
def wrong_type(draw: st.DrawFn, value: Any) -> Any:
    """The value with one part of it (perhaps all of it) replaced by a JSON value of another shape."""
    if isinstance(value, dict) and value and draw(st.integers(0, 3)):
        key = draw(st.sampled_from(sorted(value)))
        return {**value, key: draw(wrong_type(value[key]))}
    if isinstance(value, list) and value and draw(st.integers(0, 3)):
        index = draw(st.integers(0, len(value) - 1))
        return [*value[:index], draw(wrong_type(value[index])), *value[index + 1:]]
    if draw(st.integers(0, 4)) == 0:
        return draw(st.sampled_from([{}, []])) if isinstance(value, list | dict) else value
    return draw(json_values.filter(lambda new: type(new) is not type(value)))


def frame(head: bytes, data: bytes) -> bytes:
    return head + b"data: " + data + b"\n\n"


@st.composite
def malformed_stream(draw: st.DrawFn, kind: str) -> list[bytes]:
    """A recorded stream with some events replaced by wrong-typed or truncated JSON, or random bytes."""
    out = []
    for head, data in recorded_events(kind):
        raw = data if isinstance(data, bytes) else orjson.dumps(data)
        how = draw(st.sampled_from(["keep", "keep", "wrong type", "wrong type", "truncated", "random", "drop"]))
        if how == "wrong type" and not isinstance(data, bytes):
            out.append(frame(head, orjson.dumps(draw(wrong_type(data)))))
        elif how == "truncated":
            out.append(frame(head, raw[: draw(st.integers(0, max(len(raw) - 1, 0)))]))
        elif how == "random":
            out.append(draw(st.one_of(st.binary(max_size=30), st.binary(max_size=30).map(lambda b, head=head: frame(head, b)))))
        elif how != "drop":
            out.append(frame(head, raw))
    return out


def only_provider_errors(kind: str, pieces: list[bytes], include_usage: bool) -> None:
    translator = adapter(kind).chat_stream("public-model", include_usage)
    try:
        for piece in pieces:
            assert isinstance(translator.feed(piece), bytes)
        assert isinstance(translator.close(), bytes)
    except ProviderError:
        pass


@pytest.mark.parametrize("kind", KINDS)
@settings(BOUNDED, max_examples=100)
@given(data=st.data(), include_usage=st.booleans())
def test_a_malformed_stream_raises_only_provider_errors(kind: str, data: st.DataObject, include_usage: bool) -> None:
    only_provider_errors(kind, data.draw(malformed_stream(kind)), include_usage)


@pytest.mark.parametrize("kind", KINDS)
@BOUNDED
@given(pieces=st.lists(st.one_of(st.binary(max_size=40), json_values.map(lambda v: frame(b"", orjson.dumps(v)))),
                       max_size=6), include_usage=st.booleans())
def test_random_bytes_and_json_raise_only_provider_errors(kind: str, pieces: list[bytes], include_usage: bool) -> None:
    only_provider_errors(kind, pieces, include_usage)


WRONG_VALUES: list[Any] = [None, [None], {}, ":", -1, 1e20, True]


def leaf_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into a JSON value (containers too, the root excluded)."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield (*path, key)
        yield from leaf_paths(child, (*path, key))


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = replaced(value[path[0]], path[1:], new)
    return copy


def wrong_typed_streams(kind: str) -> Iterator[tuple[str, list[bytes]]]:
    """The recorded stream with one field of one event replaced by a value of another type, every way
    (deterministic and exhaustive: the catalogue of what a kind's translator does not check)."""
    events = recorded_events(kind)
    framed = [frame(head, data if isinstance(data, bytes) else orjson.dumps(data)) for head, data in events]
    for number, (head, data) in enumerate(events):
        if isinstance(data, bytes):
            continue
        for path in leaf_paths(data):
            original = functools.reduce(lambda v, k: v[k], path, data)
            for new in WRONG_VALUES:
                if type(new) is type(original) and new == original:
                    continue
                mutated = frame(head, orjson.dumps(replaced(data, path, new)))
                yield f"event {number} {'.'.join(map(str, path))}={orjson.dumps(new).decode()}", \
                    [*framed[:number], mutated, *framed[number + 1:]]


@pytest.mark.parametrize("kind", KINDS)
def test_a_stream_with_any_field_of_the_wrong_type_raises_only_provider_errors(kind: str) -> None:
    failures = []
    for label, pieces in wrong_typed_streams(kind):
        for include_usage in (False, True):
            try:
                only_provider_errors(kind, pieces, include_usage)
            except Exception as exc:
                frames = [f for f in traceback.extract_tb(exc.__traceback__) if "providers" in f.filename.split("/")]
                where = f"{'/'.join(frames[-1].filename.split('/')[-2:])}:{frames[-1].lineno}" if frames else "?"
                failures.append(f"{label}: {type(exc).__name__}: {exc} at {where}")
                break
    assert not failures, f"{len(failures)} malformed streams raised something else than ProviderError:\n" + \
        "\n".join(failures)


# --- The bugs found, each in its minimal form ------------------------------------------------------

def raises_only_provider_errors(kind: str, *events: bytes) -> None:
    only_provider_errors(kind, [*events], include_usage=True)


@pytest.mark.parametrize("usage", [b'{"prompt_tokens":[null]}', b'{"completion_tokens":":"}', b'{"total_tokens":[1]}'])
def test_openai_usage_that_is_not_a_number_is_a_provider_error(usage: bytes) -> None:
    raises_only_provider_errors("openai", b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
                                          b'"choices":[],"usage":' + usage + b"}\n\n", b"data: [DONE]\n\n")


def test_an_openai_answer_whose_usage_is_not_a_number_is_a_provider_error() -> None:
    answer = (b'{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":'
              b'{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":"x"}}')
    with contextlib.suppress(ProviderError):
        adapter("openai").chat_result(answer, "m")


@pytest.mark.parametrize("event", [
    b'data: {"tool_calls":[{"id":"c1","type":"function","index":[null],"function":{"name":"f","arguments":"{}"}}]}\n\n',
    b'data: {"finish_reason":[null]}\n\n',
    b'data: {"response":"","usage":{"prompt_tokens":1,"completion_tokens":1e20,"total_tokens":2}}\n\n',
])
def test_cloudflare_fields_of_the_wrong_type_are_provider_errors(event: bytes) -> None:
    raises_only_provider_errors("cloudflare", b'data: {"response":"Hi"}\n\n', event, b"data: [DONE]\n\n")


@pytest.mark.parametrize("event", [
    b'"usageMetadata":{"promptTokenCount":[null]}', b'"usageMetadata":{"candidatesTokenCount":":"}',
    b'"usageMetadata":{"promptTokenCount":1e20}', b'"finishReason":[null]',
])
def test_gemini_fields_of_the_wrong_type_are_provider_errors(event: bytes) -> None:
    raises_only_provider_errors("gemini", b'data: {"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"},'
                                          b'"finishReason":"STOP"}],' + event.replace(b'"finishReason"', b'"x"') + b"}\n\n"
                                if b"usage" in event else
                                b'data: {"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"},' + event +
                                b"}]}\n\n")


@pytest.mark.parametrize("event", [
    b'event: message_start\ndata: {"type":"message_start","message":[null]}\n\n',
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":":"}\n\n',
    b'event: content_block_start\ndata: {"type":"content_block_start","index":[],"content_block":'
    b'{"type":"tool_use","id":"t","name":"f","input":{}}}\n\n',
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":-1}\n\n',
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":{},"delta":'
    b'{"type":"input_json_delta","partial_json":"{}"}}\n\n',
    b'event: message_delta\ndata: {"type":"message_delta","delta":true,"usage":{"output_tokens":1}}\n\n',
])
def test_anthropic_fields_of_the_wrong_type_are_provider_errors(event: bytes) -> None:
    start = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","usage":'
             b'{"input_tokens":1,"output_tokens":1}}}\n\n')
    raises_only_provider_errors("anthropic", *([event] if b"message_start" in event else [start, event]))
