"""Token counting: exact for OpenAI models, a marked estimate for every other model.

OpenAI models are counted with ``tiktoken`` and the model's own encoding (``o200k_base`` or
``cl100k_base``, chosen by the model-name rules of tiktoken's ``model.py``). The two BPE files
ship with the project in ``gateway/encodings`` (gzip of OpenAI's published files, checked against
OpenAI's SHA-256 on load), so counting never needs the network. Each encoding is built once per
process, on first use.

Chat messages follow OpenAI's cookbook rule (``num_tokens_from_messages``): 3 tokens per message,
every string field encoded, 1 more per ``name``, 3 for the primed reply. Tool definitions use the
cookbook's empirical ``num_tokens_for_tools`` constants. Anything the rule does not cover (several
content parts, images, audio, tool calls, tool definitions) is counted reasonably and the count is
then marked as not exact.

Other models (Gemini, Claude, Llama, ...) have tokenizers of their own; they are estimated with
``o200k_base`` (the cookbook's fallback for unknown models) and marked ``estimate:o200k_base``.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tiktoken

ENCODINGS_DIR = Path(__file__).parent / "encodings"

# OpenAI's SHA-256 of the uncompressed files (tiktoken_ext/openai_public.py).
_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}

# The encodings' split patterns and special tokens, as OpenAI publishes them.
_PATTERNS = {
    "cl100k_base": (
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
        r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
    ),
    "o200k_base": "|".join([
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]),
}
_SPECIAL_TOKENS = {
    "cl100k_base": {
        "<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
        "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276,
    },
    "o200k_base": {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
}

# Model name -> encoding (tiktoken model.py): exact names first, then prefixes in this order.
_EXACT_NAMES = {
    **dict.fromkeys(["o1", "o3", "o4-mini", "gpt-5", "gpt-4.1", "gpt-4o"], "o200k_base"),
    **dict.fromkeys([
        "gpt-4", "gpt-3.5-turbo", "gpt-3.5", "gpt-35-turbo", "davinci-002", "babbage-002",
        "text-embedding-ada-002", "text-embedding-3-small", "text-embedding-3-large",
    ], "cl100k_base"),
}
_PREFIXES = (
    ("o1-", "o200k_base"), ("o3-", "o200k_base"), ("o4-mini-", "o200k_base"), ("gpt-5", "o200k_base"),
    ("gpt-4.5-", "o200k_base"), ("gpt-4.1-", "o200k_base"), ("chatgpt-4o-", "o200k_base"),
    ("gpt-4o-", "o200k_base"), ("gpt-4-", "cl100k_base"), ("gpt-3.5-turbo-", "cl100k_base"),
    ("gpt-35-turbo-", "cl100k_base"), ("gpt-oss-", "o200k_harmony"),
    ("ft:gpt-4o", "o200k_base"), ("ft:gpt-4", "cl100k_base"), ("ft:gpt-3.5-turbo", "cl100k_base"),
    ("ft:davinci-002", "cl100k_base"), ("ft:babbage-002", "cl100k_base"),
)
# o200k_harmony (gpt-oss) is o200k_base's ranks and pattern with more special tokens; counting
# treats special-token text as plain text, so o200k_base gives its counts.
_TEXT_ENCODING = {"o200k_harmony": "o200k_base"}
FALLBACK_ENCODING = "o200k_base"

# OpenAI's documented image cost: 85 tokens at detail "low"; 765 for a 1024x1024 image otherwise
# (the image's size is not known without fetching it).
IMAGE_TOKENS_LOW = 85
IMAGE_TOKENS_DEFAULT = 765


@dataclass(frozen=True)
class Count:
    """A token count and how it was made."""

    tokens: int
    exact: bool
    method: str  # "tiktoken:o200k_base" (the model's own tokenizer) or "estimate:o200k_base"
    counts: tuple[int, ...] = ()  # per input string, for count_text

    @property
    def estimated(self) -> bool:
        return not self.exact


_encodings: dict[str, tiktoken.Encoding] = {}
_lock = threading.Lock()


def load_ranks(name: str) -> dict[bytes, int]:
    """The bundled BPE ranks of an encoding, verified against OpenAI's published hash."""
    data = gzip.decompress((ENCODINGS_DIR / f"{name}.tiktoken.gz").read_bytes())
    if hashlib.sha256(data).hexdigest() != _SHA256[name]:
        raise RuntimeError(f"The bundled tokenizer file for {name} is corrupt (SHA-256 mismatch).")
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def get_encoding(name: str) -> tiktoken.Encoding:
    """The encoding ``cl100k_base`` or ``o200k_base``, built from the bundled file once per process."""
    encoding = _encodings.get(name)
    if encoding is not None:
        return encoding
    with _lock:
        if name not in _encodings:
            _encodings[name] = tiktoken.Encoding(
                name=name, pat_str=_PATTERNS[name], mergeable_ranks=load_ranks(name),
                special_tokens=_SPECIAL_TOKENS[name],
            )
        return _encodings[name]


def clear_cache() -> None:
    """Forget the built encodings (tests use it to prove a fresh load needs no network)."""
    with _lock:
        _encodings.clear()


def encoding_for(model: str) -> str | None:
    """The tiktoken encoding of an OpenAI model name (a ``vendor/`` prefix is ignored), else None."""
    name = model.rsplit("/", 1)[-1].strip().lower()
    if name in _EXACT_NAMES:
        return _EXACT_NAMES[name]
    return next((encoding for prefix, encoding in _PREFIXES if name.startswith(prefix)), None)


@dataclass
class _Counter:
    """Counts text for one model and remembers whether anything had to be estimated."""

    model: str
    encoding: tiktoken.Encoding
    method: str
    exact: bool

    @classmethod
    def for_model(cls, model: str) -> _Counter:
        name = encoding_for(model)
        if name is None:
            return cls(model, get_encoding(FALLBACK_ENCODING), f"estimate:{FALLBACK_ENCODING}", False)
        return cls(model, get_encoding(_TEXT_ENCODING.get(name, name)), f"tiktoken:{name}", True)

    def text(self, value: str) -> int:
        # Special-token text in user input is ordinary text to the API, so encode it as such.
        return len(self.encoding.encode_ordinary(value))

    def count(self, tokens: int, **extra: Any) -> Count:
        return Count(tokens, self.exact, self.method, **extra)


def count_text(model: str, texts: str | Sequence[str]) -> Count:
    """Tokens of one string or of each string of a list (``counts``), with their total."""
    counter = _Counter.for_model(model)
    items = [texts] if isinstance(texts, str) else list(texts)
    counts = tuple(counter.text(text) for text in items)
    return counter.count(sum(counts), counts=counts)


def count_messages(model: str, messages: Iterable[dict[str, Any]], tools: list[Any] | None = None) -> Count:
    """The prompt tokens of chat ``messages`` (and ``tools``) by the cookbook's rule."""
    counter = _Counter.for_model(model)
    name = counter.model.rsplit("/", 1)[-1].lower()
    per_message, per_name = (4, -1) if name.startswith("gpt-3.5-turbo-0301") else (3, 1)
    total = 3  # every reply is primed with <|start|>assistant<|message|>
    for message in messages:
        total += per_message
        for key, value in message.items():
            if isinstance(value, str):
                total += counter.text(value) + (per_name if key == "name" else 0)
            elif key == "content" and isinstance(value, list):
                total += _content_parts(counter, value)
            elif key == "tool_calls" and isinstance(value, list):
                total += sum(_call(counter, call.get("function")) for call in value if isinstance(call, dict))
            elif key == "function_call":
                total += _call(counter, value)
            elif value is not None:
                counter.exact = False  # e.g. "audio": {"id": ...}: not counted
    if tools:
        total += _tools(counter, tools)
    if counter.method == "tiktoken:o200k_harmony":
        counter.exact = False  # gpt-oss's chat format adds a system preamble the rule does not know
    return counter.count(total)


def _content_parts(counter: _Counter, parts: list[Any]) -> int:
    """Text parts are encoded; one text part counts like plain content, anything more is estimated."""
    total = 0
    if len(parts) != 1:
        counter.exact = False  # how the API joins several parts is not documented
    for part in parts:
        if not isinstance(part, dict):
            counter.exact = False
            continue
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            total += counter.text(part["text"])
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            total += counter.text(part["refusal"])
        elif kind == "image_url":
            counter.exact = False
            image = part.get("image_url")
            detail = image.get("detail") if isinstance(image, dict) else None
            total += IMAGE_TOKENS_LOW if detail == "low" else IMAGE_TOKENS_DEFAULT
        else:
            counter.exact = False  # audio and files cannot be counted without decoding them
    return total


def _call(counter: _Counter, function: Any) -> int:
    """A tool call's (or legacy function call's) name and arguments."""
    counter.exact = False
    if not isinstance(function, dict):
        return 0
    return sum(counter.text(function[key]) for key in ("name", "arguments") if isinstance(function.get(key), str))


def _tools(counter: _Counter, tools: list[Any]) -> int:
    """The cookbook's ``num_tokens_for_tools``: empirical constants, so always an estimate."""
    counter.exact = False
    func_init = 7 if counter.encoding.name == "o200k_base" else 10
    prop_init, prop_key, enum_init, enum_item, func_end = 3, 3, -3, 3, 12
    total = 0
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict):
            continue
        total += func_init
        description = str(function.get("description") or "").removesuffix(".")
        total += counter.text(f"{function.get('name') or ''}:{description}")
        parameters = function.get("parameters")
        properties = parameters.get("properties") if isinstance(parameters, dict) else None
        if not isinstance(properties, dict) or not properties:
            continue
        total += prop_init
        for key, prop in properties.items():
            prop = prop if isinstance(prop, dict) else {}
            total += prop_key
            if isinstance(prop.get("enum"), list):
                total += enum_init + sum(enum_item + counter.text(str(item)) for item in prop["enum"])
            description = str(prop.get("description") or "").removesuffix(".")
            total += counter.text(f"{key}:{prop.get('type', '')}:{description}")
    return total + (func_end if total else 0)


def _prompt_texts(value: Any) -> tuple[list[str], int]:
    """Strings to encode and tokens already given as ids, from a ``prompt`` or ``input`` field."""
    if isinstance(value, str):
        return [value], 0
    if not isinstance(value, list):
        return [], 0
    if all(isinstance(item, int) for item in value):
        return [], len(value)  # one prompt given as token ids
    texts, given = [], 0
    for item in value:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, list):
            given += len(item)  # a list of token-id prompts
    return texts, given


def estimate_usage(body: dict[str, Any], completion_text: str, model: str) -> tuple[int, int]:
    """(prompt_tokens, completion_tokens) for a request whose provider reported no usage.

    The prompt is the body's ``messages`` (with ``tools``), else its ``prompt`` (legacy
    completions) or ``input`` (embeddings); the completion is the text the client received.
    """
    messages = body.get("messages")
    if isinstance(messages, list):
        tools = body.get("tools") if isinstance(body.get("tools"), list) else None
        prompt = count_messages(model, [m for m in messages if isinstance(m, dict)], tools).tokens
    else:
        field = "prompt" if "prompt" in body else "input"
        texts, given = _prompt_texts(body.get(field))
        prompt = count_text(model, texts).tokens + given
    completion = count_text(model, completion_text).tokens if completion_text else 0
    return prompt, completion
