"""A client-supplied model name cannot reach another upstream path with the gateway's key."""

from __future__ import annotations

import pytest
import yarl

from providers.base import Account, ProviderError
from providers.registry import adapter_for
from providers.urls import path_segments

BODY = {"messages": [{"role": "user", "content": "hi"}]}
ESCAPES = ["@cf/../../../accounts/OTHER/ai/run/x", "@cf/meta/./x", "@cf//x", "..", ".", "a\\b", "a?b=1", "a#b",
           "a%2F..%2Fb", "a\x00b", "a\nb", "x" * 201, ""]


@pytest.mark.parametrize("name", ESCAPES)
def test_names_that_could_leave_their_segment_are_refused(name: str) -> None:
    with pytest.raises(ProviderError) as info:
        path_segments(name, slashes=True)
    assert info.value.status == 400 and info.value.param == "model"


def test_catalog_names_keep_their_slashes_and_everything_else_is_encoded() -> None:
    assert path_segments("@cf/meta/llama-3.1-8b-instruct", slashes=True) == "@cf/meta/llama-3.1-8b-instruct"
    assert path_segments("a b/c", slashes=True) == "a%20b/c"
    assert path_segments("models-x/y") == "models-x%2Fy"  # one segment: the slash is data


PREFIXES = {"cloudflare": "/client/v4/accounts/acc/ai/run/", "gemini": "/v1beta/models/",
            "anthropic": "/v1/messages", "openai": "/v1/chat/completions"}


@pytest.mark.parametrize("kind", sorted(PREFIXES))
@pytest.mark.parametrize("name", ESCAPES)
def test_no_model_name_moves_any_adapters_request_off_its_path(kind: str, name: str) -> None:
    """Either the name is refused (400), or the URL, as the HTTP client will send it, keeps its path."""
    adapter = adapter_for(Account("a", kind, "", "key-0123456789", {"account_id": "acc"}))
    try:
        url = adapter.chat_request(dict(BODY), name, 100).url
    except ProviderError as exc:
        assert exc.status == 400
        return
    sent = yarl.URL(url)  # what aiohttp sends: yarl resolves dot segments
    assert sent.raw_path.startswith(PREFIXES[kind]) and "/../" not in sent.raw_path and not sent.query_string


def test_a_cloudflare_url_stays_under_the_accounts_run_path() -> None:
    adapter = adapter_for(Account("a", "cloudflare", "", "key-0123456789", {"account_id": "acc"}))
    url = adapter.chat_request(dict(BODY), "@cf/meta/llama-3.1-8b-instruct", 100).url
    assert url == "https://api.cloudflare.com/client/v4/accounts/acc/ai/run/@cf/meta/llama-3.1-8b-instruct"
