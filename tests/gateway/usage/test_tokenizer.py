"""Token counting: exact tiktoken counts from the bundled encodings, offline; estimates marked as such."""

from __future__ import annotations

import gzip
import hashlib
import socket
from pathlib import Path

import pytest
import tiktoken
import tiktoken.load
from tiktoken_ext import openai_public

from gateway.usage import tokenizer

# The cookbook's example conversation (openai-cookbook, How_to_count_tokens_with_tiktoken).
COOKBOOK_MESSAGES = [
    {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate "
                                  "jargon into plain English."},
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch "
                                                          "base on opportunities for increased leverage."},
    {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to "
                                                               "do better."},
    {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client "
                                "deliverable."},
]

# The cookbook's tools example (num_tokens_for_tools).
WEATHER_TOOLS = [{"type": "function", "function": {
    "name": "get_current_weather", "description": "Get the current weather in a given location",
    "parameters": {"type": "object", "required": ["location"], "properties": {
        "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
        "unit": {"type": "string", "description": "The unit of temperature to return", "enum": ["celsius", "fahrenheit"]},
    }},
}}]
WEATHER_MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant that can answer to questions about the weather."},
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]

SAMPLE_TEXTS = [
    "hello world", "tiktoken is great!", "  leading and trailing spaces  ", "line one\r\nline two\n\n\tTabbed",
    "It's we'll they're I'M YOU'VE", "1234567890 3.14159 -42 1e10", "naïve café Ünïcödé façade",
    "お誕生日おめでとう 你好世界 안녕하세요 Привет мир مرحبا", "emoji 👋🏽🎉 and <|endoftext|> <|fim_prefix|>",
    "def f(x):\n    return {'a': [1, 2, 3]}  # comment\n", "https://example.com/path?q=1&r=two#frag",
    "CamelCaseWords and snake_case_words and SHOUTING", "   \n   \n", "",
]


@pytest.fixture
def fresh_encodings():
    """Each test that uses this starts with no encoding built in this process."""
    tokenizer.clear_cache()
    yield
    tokenizer.clear_cache()


@pytest.mark.parametrize(("encoding", "text", "ids"), [
    ("cl100k_base", "hello world", [15339, 1917]),
    ("cl100k_base", "tiktoken is great!", [83, 1609, 5963, 374, 2294, 0]),
    ("o200k_base", "hello world", [24912, 2375]),
    ("o200k_base", "tiktoken is great!", [83, 8251, 2488, 382, 2212, 0]),
])
def test_bundled_encodings_give_tiktokens_known_token_ids(encoding: str, text: str, ids: list[int]) -> None:
    assert tokenizer.get_encoding(encoding).encode(text) == ids


def test_special_tokens_have_openais_ids() -> None:
    assert tokenizer.get_encoding("cl100k_base").encode("<|endoftext|>", allowed_special="all") == [100257]
    assert tokenizer.get_encoding("o200k_base").encode("<|endofprompt|>", allowed_special="all") == [200018]


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_bundled_encoding_matches_tiktokens_own_definition(name: str, tmp_path: Path, monkeypatch) -> None:
    """tiktoken's own constructor, fed the same file through its cache, encodes every sample identically."""
    url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
    data = gzip.decompress((tokenizer.ENCODINGS_DIR / f"{name}.tiktoken.gz").read_bytes())
    (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(data)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tiktoken.load, "read_file", _no_download)
    reference = tiktoken.Encoding(**getattr(openai_public, name)())
    ours = tokenizer.get_encoding(name)
    assert ours.n_vocab == reference.n_vocab and ours.special_tokens_set == reference.special_tokens_set
    for text in SAMPLE_TEXTS:
        assert ours.encode_ordinary(text) == reference.encode_ordinary(text), text


def _no_download(*args, **kwargs):
    raise AssertionError("the network was used")


def test_counting_works_with_the_network_unreachable(fresh_encodings: None, monkeypatch, tmp_path: Path) -> None:
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(tiktoken.load, "read_file", _no_download)
    monkeypatch.setattr(tiktoken.load, "read_file_cached", _no_download)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # an empty cache: nothing to fall back on
    assert tokenizer.count_text("gpt-4o", "hello world").tokens == 2
    assert tokenizer.count_text("gpt-4", "tiktoken is great!").tokens == 6
    assert tokenizer.count_messages("gpt-4o-mini", COOKBOOK_MESSAGES).tokens == 124
    assert list(tmp_path.iterdir()) == []


def test_each_encoding_is_built_once_per_process(fresh_encodings: None, monkeypatch) -> None:
    loads: list[str] = []
    real = tokenizer.load_ranks
    monkeypatch.setattr(tokenizer, "load_ranks", lambda name: loads.append(name) or real(name))
    for _ in range(3):
        tokenizer.count_text("gpt-4o", "one")
        tokenizer.count_text("gpt-4.1-mini", "two")
        tokenizer.count_text("gpt-3.5-turbo", "three")
    assert sorted(loads) == ["cl100k_base", "o200k_base"]


def test_a_corrupt_bundled_file_is_refused(fresh_encodings: None, tmp_path: Path, monkeypatch) -> None:
    data = gzip.decompress((tokenizer.ENCODINGS_DIR / "cl100k_base.tiktoken.gz").read_bytes())
    (tmp_path / "cl100k_base.tiktoken.gz").write_bytes(gzip.compress(data.replace(b"IQ== 0", b"Ig== 0", 1)))
    monkeypatch.setattr(tokenizer, "ENCODINGS_DIR", tmp_path)
    with pytest.raises(RuntimeError, match="corrupt"):
        tokenizer.count_text("gpt-4", "hello")


@pytest.mark.parametrize(("model", "encoding"), [
    ("gpt-4o", "o200k_base"), ("gpt-4o-mini", "o200k_base"), ("gpt-4o-2024-08-06", "o200k_base"),
    ("chatgpt-4o-latest", "o200k_base"), ("gpt-4.1-nano", "o200k_base"), ("gpt-4.5-preview", "o200k_base"),
    ("o1", "o200k_base"), ("o1-mini", "o200k_base"), ("o3-mini", "o200k_base"), ("o4-mini", "o200k_base"),
    ("gpt-5", "o200k_base"), ("gpt-5-mini", "o200k_base"), ("gpt-5.1", "o200k_base"),
    ("ft:gpt-4o-mini:acme::abc123", "o200k_base"), ("openai/gpt-4o", "o200k_base"),
    ("gpt-4", "cl100k_base"), ("gpt-4-turbo", "cl100k_base"), ("gpt-4-0613", "cl100k_base"),
    ("gpt-3.5-turbo", "cl100k_base"), ("gpt-35-turbo-16k", "cl100k_base"), ("text-embedding-3-small", "cl100k_base"),
    ("text-embedding-ada-002", "cl100k_base"), ("ft:gpt-3.5-turbo:acme::x", "cl100k_base"),
    ("@cf/openai/gpt-oss-120b", "o200k_harmony"),
    ("claude-sonnet-4-5", None), ("gemini-2.5-flash", None), ("@cf/meta/llama-3.1-8b-instruct", None),
])
def test_model_names_map_to_their_tiktoken_encoding(model: str, encoding: str | None) -> None:
    assert tokenizer.encoding_for(model) == encoding


def test_text_counts_are_exact_and_per_string_for_openai_models() -> None:
    count = tokenizer.count_text("gpt-4", ["hello world", "tiktoken is great!", ""])
    assert (count.tokens, count.counts) == (8, (2, 6, 0))
    assert count.exact and not count.estimated and count.method == "tiktoken:cl100k_base"
    single = tokenizer.count_text("gpt-4o-mini", "tiktoken is great!")
    assert (single.tokens, single.counts, single.method) == (6, (6,), "tiktoken:o200k_base")


def test_special_token_text_in_user_input_counts_as_plain_text() -> None:
    count = tokenizer.count_text("gpt-4", "<|endoftext|>")
    assert count.tokens == len(tokenizer.get_encoding("cl100k_base").encode_ordinary("<|endoftext|>")) > 1


def test_other_models_get_an_estimate_marked_as_such() -> None:
    count = tokenizer.count_text("claude-sonnet-4-5", "tiktoken is great!")
    assert count.estimated and not count.exact and count.method == "estimate:o200k_base"
    assert count.tokens == 6
    chat = tokenizer.count_messages("gemini-2.5-flash", COOKBOOK_MESSAGES)
    assert chat.estimated and chat.method == "estimate:o200k_base" and chat.tokens == 124


@pytest.mark.parametrize(("model", "tokens"), [
    ("gpt-3.5-turbo", 129), ("gpt-4-0613", 129), ("gpt-4", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124),
    ("gpt-3.5-turbo-0301", 127),  # 4 tokens per message, a name replaces the role
])
def test_chat_messages_follow_the_cookbook_and_match_its_api_counts(model: str, tokens: int) -> None:
    count = tokenizer.count_messages(model, COOKBOOK_MESSAGES)
    assert (count.tokens, count.exact) == (tokens, True)


def test_message_overhead_is_three_per_message_one_per_name_and_three_for_the_reply() -> None:
    encode = tokenizer.get_encoding("o200k_base").encode_ordinary
    one = tokenizer.count_messages("gpt-4o", [{"role": "user", "content": "hello world"}]).tokens
    assert one == 3 + len(encode("user")) + 2 + 3
    named = tokenizer.count_messages("gpt-4o", [{"role": "user", "name": "bob", "content": "hello world"}]).tokens
    assert named == one + len(encode("bob")) + 1


def test_one_text_part_counts_like_plain_content_and_more_parts_are_estimated() -> None:
    plain = tokenizer.count_messages("gpt-4o", [{"role": "user", "content": "describe this"}])
    one_part = tokenizer.count_messages("gpt-4o", [{"role": "user", "content": [{"type": "text", "text": "describe this"}]}])
    assert one_part == plain
    with_image = tokenizer.count_messages("gpt-4o", [{"role": "user", "content": [
        {"type": "text", "text": "describe this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
    ]}])
    assert with_image.tokens == plain.tokens + tokenizer.IMAGE_TOKENS_LOW and with_image.estimated
    assert with_image.method == "tiktoken:o200k_base"


def test_tool_calls_count_their_name_and_arguments_as_an_estimate() -> None:
    encode = tokenizer.get_encoding("o200k_base").encode_ordinary
    base = [{"role": "user", "content": "weather?"}]
    call = {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
    result = {"role": "tool", "tool_call_id": "call_1", "content": "18C"}
    before = tokenizer.count_messages("gpt-4o", base).tokens
    after = tokenizer.count_messages("gpt-4o", [*base, call, result])
    expected_call = 3 + len(encode("assistant")) + len(encode("get_weather")) + len(encode('{"city": "Paris"}'))
    expected_result = 3 + len(encode("tool")) + len(encode("call_1")) + len(encode("18C"))
    assert after.tokens == before + expected_call + expected_result and after.estimated


@pytest.mark.parametrize(("model", "tokens"), [("gpt-4o", 101), ("gpt-4o-mini", 101), ("gpt-4", 105), ("gpt-3.5-turbo", 105)])
def test_tool_definitions_add_the_cookbooks_counts(model: str, tokens: int) -> None:
    count = tokenizer.count_messages(model, WEATHER_MESSAGES, WEATHER_TOOLS)
    assert count.tokens == tokens and count.estimated


def test_gpt_oss_text_is_exact_but_its_chat_format_is_estimated() -> None:
    text = tokenizer.count_text("@cf/openai/gpt-oss-20b", "tiktoken is great!")
    assert (text.tokens, text.exact, text.method) == (6, True, "tiktoken:o200k_harmony")
    assert tokenizer.count_messages("gpt-oss-120b", WEATHER_MESSAGES).estimated


def test_estimate_usage_counts_messages_prompts_inputs_and_the_completion() -> None:
    body = {"model": "gpt-4o", "messages": COOKBOOK_MESSAGES}
    assert tokenizer.estimate_usage(body, "tiktoken is great!", "gpt-4o") == (124, 6)
    assert tokenizer.estimate_usage({"messages": WEATHER_MESSAGES, "tools": WEATHER_TOOLS}, "", "gpt-4") == (105, 0)
    assert tokenizer.estimate_usage({"prompt": "hello world"}, "hello world", "gpt-3.5-turbo") == (2, 2)
    assert tokenizer.estimate_usage({"prompt": ["hello world", "tiktoken is great!"]}, "", "gpt-4") == (8, 0)
    assert tokenizer.estimate_usage({"prompt": [1, 2, 3]}, "", "gpt-4") == (3, 0)
    assert tokenizer.estimate_usage({"input": [[1, 2], [3]]}, "", "text-embedding-3-small") == (3, 0)
    assert tokenizer.estimate_usage({"input": "tiktoken is great!"}, "", "text-embedding-3-small") == (6, 0)


def test_estimate_usage_tolerates_odd_bodies() -> None:
    assert tokenizer.estimate_usage({}, "", "gpt-4o") == (0, 0)
    assert tokenizer.estimate_usage({"messages": ["not a message", {"role": "user", "content": 7}]}, "", "x")[0] > 0
    assert tokenizer.estimate_usage({"prompt": {"weird": True}}, "hello world", "claude-3-haiku") == (0, 2)
