"""Log rows are made to fit their columns where they are built: nothing a client sends can make the database refuse one."""

from __future__ import annotations

import timeit
from decimal import Decimal

import pytest

from gateway.models import RequestLog
from gateway.usage.call import Call
from gateway.usage.clean import clean_row, clean_text, scrub_row
from providers.base import ProviderError, Usage


def max_length(name: str) -> int:
    return RequestLog._meta.get_field(name).max_length


def test_nul_and_lone_surrogates_are_replaced_and_text_cut_to_its_column():
    call = Call("chat.completions", "req_1", session_id="s\x00" + "é" * 500, requested_model="gpt\x00\ud800" + "x" * 999)
    call.fail(ProviderError(404, "The model `gpt\x00\udfff` does not exist." + "!" * 999, "invalid_request_error",
                            "model_\x00not_found" * 10))
    row = call.row()
    assert row["requested_model"].startswith("gpt\ufffd\ufffdx") and len(row["requested_model"]) == max_length("requested_model")
    assert row["session_id"] == ("s\ufffd" + "é" * 500)[:max_length("session_id")]
    assert row["error_message"].startswith("The model `gpt\ufffd\ufffd`") and len(row["error_message"]) == 500
    assert len(row["error_type"]) == max_length("error_type") and "\x00" not in row["error_type"]
    for value in row.values():
        if isinstance(value, str):
            value.encode("utf-8")  # no surrogate left


def test_numbers_are_clamped_to_their_columns():
    row = clean_row({"prompt_tokens": 2**70, "completion_tokens": -5, "total_tokens": None, "latency_ms": float("nan"),
                     "ttft_ms": None, "status_code": 10**6, "attempts": True, "cost": Decimal("1e30"),
                     "stream": 1, "usage_estimated": 0})
    assert row == {"prompt_tokens": 2**31 - 1, "completion_tokens": 0, "total_tokens": 0, "latency_ms": 0,
                   "ttft_ms": None, "status_code": 32767, "attempts": 1, "cost": Decimal("999999.99999999"),
                   "stream": True, "usage_estimated": False}
    assert clean_row({"cost": Decimal("NaN"), "ttft_ms": 2**40})["cost"] == 0
    assert clean_row({"ttft_ms": 2**40})["ttft_ms"] == 2**31 - 1


def test_a_clean_row_is_left_as_it_is():
    call = Call("chat.completions", "req_2", requested_model="gpt-4o-mini", usage=Usage(3, 4, 7))
    row = call.row()
    assert clean_row(dict(row)) == row and row["requested_model"] == "gpt-4o-mini" and row["total_tokens"] == 7


def test_text_of_other_types_becomes_text():
    assert clean_text(None, 10) == "" and clean_text(12345, 3) == "123"


def test_scrub_reduces_text_to_printable_ascii():
    row = scrub_row({"requested_model": "mødel\x00\ud800\n", "created_at": None, "prompt_tokens": -1})
    assert row["requested_model"] == "m?del???" and row["prompt_tokens"] == 0 and row["created_at"] is not None


@pytest.mark.parametrize("bodies", [False, True])
def test_cleaning_costs_little_per_row(settings, bodies):
    """Not a benchmark (the report quotes one): a generous bound so that a regex over every field would show."""
    settings.GATEWAY = {"LOG_BODIES": bodies}
    call = Call("chat.completions", "req_3", session_id="sess", requested_model="gpt-4o-mini", usage=Usage(3, 4, 7),
                request_body=b'{"messages": [{"role": "user", "content": "' + b"hello " * 2000 + b'"}]}',
                response_body=b'{"choices": []}')
    row = call.row()
    per_row = min(timeit.repeat(lambda: clean_row(row), number=1000, repeat=5)) / 1000
    assert per_row < 50e-6
