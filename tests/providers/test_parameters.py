"""The declared parameter policies: every refusal is the one 400, and each adapter does what its policy says.

The per-adapter tests are driven from the policies themselves: a field added to a policy is tested
without a new test (only a sample value for it below).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from providers import completions, embeddings
from providers.base import Account, Adapter, ProviderError
from providers.parameters import (
    UNSUPPORTED_PARAMETER,
    UNSUPPORTED_VALUE,
    ParameterPolicy,
    Refuse,
    other_than,
    refusal,
    truthy,
)
from providers.registry import ADAPTERS
from tests.openai_schema import assert_valid

USER = [{"role": "user", "content": "hi"}]

# A value each refusal of some policy refuses.
REFUSED_SAMPLES: dict[str, Any] = {
    "n": 2, "logprobs": True, "top_logprobs": 3, "logit_bias": {"50256": -100}, "stop": ["\n"],
    "modalities": ["text", "audio"], "parallel_tool_calls": False, "audio": {"voice": "alloy", "format": "wav"},
    "prediction": {"type": "content", "content": "x"}, "web_search_options": {"search_context_size": "low"},
    "reasoning_effort": "minimal", "verbosity": "low", "functions": [{"name": "f"}], "function_call": "auto",
    "moderation": {"policy": "strict"}, "presence_penalty": -1, "frequency_penalty": -1.5,
    "response_format": {"type": "json_object"},
}
# A value for each dropped field of some policy.
DROPPED_SAMPLES: dict[str, Any] = {
    "user": "u1", "safety_identifier": "s1", "prompt_cache_key": "k", "metadata": {"a": "b"}, "store": True,
    "service_tier": "auto", "stream_options": {"include_usage": True}, "prompt_cache_retention": "24h",
    "prompt_cache_options": {"ttl": 60}, "parallel_tool_calls": True, "prediction": {"type": "content", "content": "x"},
    "top_logprobs": 2, "seed": 1,
}
# Values that are neutral for some refusal: a refused field with such a value is accepted and dropped.
NEUTRAL_CANDIDATES: list[Any] = [False, 0, 1, "", {}, [], ["text"], {"type": "text"}, "medium", True]

CHAT_ADAPTERS = sorted(ADAPTERS.items())


def adapter(cls: type[Adapter]) -> Adapter:
    return cls(Account("acct", cls.kind, "http://127.0.0.1:9/v1", "key-0123456789", {"account_id": "acc1"}))


def request_body(cls: type[Adapter], body: dict[str, Any]) -> dict[str, Any]:
    return orjson.loads(adapter(cls).chat_request({"messages": USER, **body}, "m", 100).body)


def refusals(policy: ParameterPolicy) -> list[tuple[str, Refuse]]:
    return [*policy.refused.items(), *policy.refused_values.items()]


def assert_refusal(error: ProviderError, param: str, code: str, provider: str) -> None:
    assert (error.status, error.type, error.code, error.param) == (400, "invalid_request_error", code, param)
    assert param in error.message and provider in error.message
    assert_valid("Error", {"message": error.message, "type": error.type, "param": error.param, "code": error.code})


# -- the one refusal ------------------------------------------------------------------------------------

def test_a_refusal_is_a_400_naming_the_parameter_and_the_provider() -> None:
    error = refusal("Acme AI", "logit_bias")
    assert_refusal(error, "logit_bias", UNSUPPORTED_PARAMETER, "Acme AI")
    assert error.message == ("The parameter 'logit_bias' is not supported by the Acme AI provider: "
                             "remove it or use a model from another provider.")
    value = refusal("Acme AI", "n", "it gives one answer.", subject="A value of 'n' other than 1", code=UNSUPPORTED_VALUE)
    assert value.message == "A value of 'n' other than 1 is not supported by the Acme AI provider: it gives one answer."
    assert value.code == UNSUPPORTED_VALUE and value.retry_after is None


def test_a_policy_names_each_field_once() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        ParameterPolicy(mapped=frozenset({"n"}), refused={"n": Refuse()})
    with pytest.raises(ValueError, match="neither mapped nor dropped"):
        ParameterPolicy(refused_values={"n": Refuse()})


def test_check_refuses_unknown_fields_first_and_never_a_null() -> None:
    policy = ParameterPolicy(mapped=frozenset({"a"}), refused={"b": Refuse(truthy)},
                             refused_values={"a": Refuse(other_than(1), code=UNSUPPORTED_VALUE)})
    policy.check({"a": 1, "b": False}, "P")
    policy.check({"a": None, "b": None}, "P")
    with pytest.raises(ProviderError) as info:
        policy.check({"b": True, "zzz": 1}, "P")
    assert info.value.param == "zzz"
    with pytest.raises(ProviderError) as info:
        policy.check({"b": True, "a": 2}, "P")
    assert (info.value.param, info.value.code) == ("b", UNSUPPORTED_PARAMETER)
    with pytest.raises(ProviderError) as info:
        policy.check({"a": 2}, "P")
    assert (info.value.param, info.value.code) == ("a", UNSUPPORTED_VALUE)
    passing = ParameterPolicy(mapped=frozenset({"a"}), unknown=None)
    passing.check({"zzz": 1}, "P")
    assert passing.unknown_fields({"a": 1, "zzz": 2}) == {"zzz": 2}


# -- every adapter, from its declared policy --------------------------------------------------------

@pytest.mark.parametrize(("kind", "cls"), CHAT_ADAPTERS)
def test_every_adapter_declares_a_policy(kind: str, cls: type[Adapter]) -> None:
    assert isinstance(cls.chat_parameters, ParameterPolicy)
    missing = {name for name, _ in refusals(cls.chat_parameters)} - REFUSED_SAMPLES.keys()
    assert not missing, f"add a refused sample value for {sorted(missing)}"
    missing = cls.chat_parameters.dropped - DROPPED_SAMPLES.keys()
    assert not missing, f"add a dropped sample value for {sorted(missing)}"


@pytest.mark.parametrize(("kind", "cls"), CHAT_ADAPTERS)
def test_every_refused_parameter_is_the_400_naming_it(kind: str, cls: type[Adapter]) -> None:
    for name, rule in refusals(cls.chat_parameters):
        value = REFUSED_SAMPLES[name]
        assert rule.when(value), f"{kind}: the sample for {name!r} is not one the policy refuses"
        with pytest.raises(ProviderError) as info:
            request_body(cls, {name: value})
        assert_refusal(info.value, name, rule.code, cls.label)


@pytest.mark.parametrize(("kind", "cls"), CHAT_ADAPTERS)
def test_neutral_values_of_refused_parameters_are_accepted_and_not_sent(kind: str, cls: type[Adapter]) -> None:
    plain = request_body(cls, {})
    for name, rule in cls.chat_parameters.refused.items():
        neutral = [value for value in NEUTRAL_CANDIDATES if not rule.when(value)]
        for value in [None, *neutral]:
            assert request_body(cls, {name: value}) == plain, f"{kind}: {name}={value!r}"


@pytest.mark.parametrize(("kind", "cls"), CHAT_ADAPTERS)
def test_dropped_parameters_are_accepted_and_not_sent(kind: str, cls: type[Adapter]) -> None:
    plain = request_body(cls, {})
    for name in cls.chat_parameters.dropped:
        assert request_body(cls, {name: DROPPED_SAMPLES[name]}) == plain, f"{kind}: {name}"


@pytest.mark.parametrize(("kind", "cls"), CHAT_ADAPTERS)
def test_unknown_parameters_are_refused_or_sent_as_they_are(kind: str, cls: type[Adapter]) -> None:
    policy = cls.chat_parameters
    if policy.unknown is None:
        assert request_body(cls, {"x_vendor_option": 7})["x_vendor_option"] == 7
        return
    with pytest.raises(ProviderError) as info:
        request_body(cls, {"x_vendor_option": 7})
    assert_refusal(info.value, "x_vendor_option", policy.unknown.code, cls.label)


# -- completions and embeddings ---------------------------------------------------------------------

@pytest.mark.parametrize(("name", "value"), [("suffix", "end"), ("logprobs", 2), ("best_of", 3)])
def test_completion_fields_a_chat_model_cannot_honour_are_refused(name: str, value: Any) -> None:
    rule = completions.COMPLETION_PARAMETERS.refused[name]
    assert rule.when(value)
    with pytest.raises(ProviderError) as info:
        completions.chat_body({"prompt": "x", name: value}, "Acme AI")
    assert_refusal(info.value, name, rule.code, "Acme AI")
    assert set(completions.COMPLETION_PARAMETERS.refused) == {"suffix", "logprobs", "best_of"}


def test_completion_fields_go_on_to_the_chat_request() -> None:
    chat = completions.chat_body({"prompt": "x", "echo": True, "suffix": "", "best_of": 1, "temperature": 0.5,
                                  "stream": True, "stream_options": {"include_usage": True}}, "Acme AI")
    assert chat == {"temperature": 0.5, "stream": True, "stream_options": {"include_usage": True},
                    "messages": [{"role": "user", "content": "x"}]}


@pytest.mark.parametrize(("policy", "build"), [
    (embeddings.GEMINI_PARAMETERS, lambda body: embeddings.gemini_request(body, "m", "Acme AI")),
    (embeddings.WORKERS_AI_PARAMETERS, lambda body: embeddings.workers_ai_request(body, "Acme AI")),
])
def test_embedding_policies_refuse_what_they_declare(policy: ParameterPolicy, build: Any) -> None:
    samples = {"stream": True, "dimensions": 256}
    for name, rule in policy.refused.items():
        with pytest.raises(ProviderError) as info:
            build({"input": "x", name: samples[name]})
        assert_refusal(info.value, name, rule.code, "Acme AI")
    with pytest.raises(ProviderError) as info:
        build({"input": "x", "task_type": "RETRIEVAL_QUERY"})
    assert_refusal(info.value, "task_type", UNSUPPORTED_PARAMETER, "Acme AI")
    build({"input": "x", "user": "u1", "stream": False, "encoding_format": "base64"})
