"""The Messages passthrough's model substitution: only the top-level model value changes, byte for byte."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.base import ProviderError
from providers.messages.passthrough import PassthroughStream, with_model


def substituted(raw: bytes, model: str) -> bytes:
    return with_model(raw, orjson.loads(raw), model)


def test_the_same_model_leaves_the_bytes_untouched() -> None:
    raw = b'{"model":"claude-x",  "messages": []}'
    assert with_model(raw, orjson.loads(raw), "claude-x") is raw


def test_only_the_top_level_model_value_is_replaced() -> None:
    raw = (b'{ "messages": [{"role": "user", "content": "{\\"model\\": \\"a\\"}", "model": "nested"}],\n'
           b'  "metadata": {"model": "deep"}, "model" :\t"short" , "max_tokens": 5}')
    assert substituted(raw, "claude-sonnet-4-20250514") == raw.replace(b'"short"', b'"claude-sonnet-4-20250514"')


def test_a_key_spelled_with_escapes_is_the_model_key() -> None:
    raw = b'{"mod\\u0065l": "a", "max_tokens": 1}'
    assert orjson.loads(substituted(raw, "b")) == {"model": "b", "max_tokens": 1}


def test_a_body_naming_model_twice_is_refused() -> None:
    raw = b'{"model": "a", "model": "b"}'
    with pytest.raises(ProviderError) as raised:
        with_model(raw, {"model": "b"}, "c")
    assert raised.value.status == 400 and raised.value.param == "model"


def test_a_body_without_model_gets_it_first() -> None:
    assert orjson.loads(substituted(b'{"max_tokens": 1}', "m")) == {"model": "m", "max_tokens": 1}
    assert orjson.loads(substituted(b' { } ', "m")) == {"model": "m"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6), json_values, st.text(min_size=1, max_size=20),
       st.sampled_from([b"", b" ", b"\n  "]))
def test_substitution_changes_nothing_but_the_model(body: dict, old_model: object, new_model: str,
                                                      space: bytes) -> None:
    body = {**body, "model": old_model}
    raw = orjson.dumps(body, option=orjson.OPT_INDENT_2 if space else 0)
    assert orjson.loads(with_model(raw, body, new_model)) == {**body, "model": new_model}


def test_the_stream_passes_through_unchanged_and_counts_usage() -> None:
    events = (b'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":7,'
              b'"cache_read_input_tokens":3,"output_tokens":1}}}\n\n'
              b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}\n\n'
              b'event: message_delta\ndata: {"type":"message_delta","delta":{},"usage":{"output_tokens":4}}\n\n'
              b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    stream = PassthroughStream(lambda status, body: ProviderError(status, "x"), {})
    out = b"".join(stream.feed(events[i:i + 17]) for i in range(0, len(events), 17)) + stream.close()
    assert out == events and stream.finished and stream.first_token_seen
    assert (stream.usage.prompt_tokens, stream.usage.completion_tokens, stream.usage.cached_tokens) == (10, 4, 3)


def test_an_error_event_is_raised_after_the_events_before_it() -> None:
    before = b'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":1}}}\n\n'
    error = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    stream = PassthroughStream(lambda status, body: ProviderError(status, "overloaded"), {"overloaded_error": 529})
    assert stream.feed(before + error) == before
    with pytest.raises(ProviderError) as raised:
        stream.close()
    assert raised.value.status == 529
