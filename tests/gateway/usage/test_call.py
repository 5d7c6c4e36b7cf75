"""Call.row(): which log rows keep the request and response bodies (GATEWAY_LOG_BODIES)."""

from __future__ import annotations

import pytest

from gateway.usage.call import Call
from providers.base import ProviderError


def bodies(status: int) -> tuple[str | None, str | None]:
    call = Call("chat.completions", "req_1", request_body=b'{"q": 1}', response_body=b'{"a": 2}')
    if status >= 400:
        call.fail(ProviderError(status, "upstream failed"))
    row = call.row()
    return row.get("request_body"), row.get("response_body")


@pytest.mark.parametrize(("mode", "ok", "failed"), [
    ("off", False, False), (False, False, False),
    ("all", True, True), (True, True, True),
    ("errors", False, True),
])
def test_log_bodies_keeps_bodies_of_all_rows_none_or_only_failed_requests(settings, mode, ok, failed) -> None:
    settings.GATEWAY = {"LOG_BODIES": mode}
    kept = ('{"q": 1}', '{"a": 2}')
    assert (bodies(200) == kept) is ok and (bodies(200) == (None, None)) is not ok
    assert (bodies(429) == kept) is failed and (bodies(502) == kept) is failed
    assert (bodies(499) == kept) is failed  # any status of 400 and above


def test_log_bodies_defaults_to_off(settings) -> None:
    settings.GATEWAY = {}
    assert bodies(500) == (None, None)
