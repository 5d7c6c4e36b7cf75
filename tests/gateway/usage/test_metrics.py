"""The metrics of real /v1 calls through the live gateway, as a Prometheus scrape reads them."""

from __future__ import annotations

import math
import secrets
from decimal import Decimal

import httpx
import openai
import pytest
from django.test import override_settings

from gateway.usage import metrics
from gateway.usage.metrics import Observation
from gateway.usage.observer import observer
from tests.conftest import make_model, make_provider, make_token
from tests.gateway.usage.metrics_scrape import METRICS_ON, Samples, label_values, scrape, value
from tests.servers import free_port

pytestmark = pytest.mark.usefixtures("_metrics_on")
CHAT = "chat.completions"


@pytest.fixture
def _metrics_on():
    with override_settings(GATEWAY=METRICS_ON):
        yield


def sdk(setup: dict, token: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=setup["gateway"].v1, api_key=token or setup["token"], max_retries=0)


def hello(client: openai.OpenAI, model: str = "gpt-4o-mini", text: str = "hello there") -> None:
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_a_scrape_counts_the_calls_their_tokens_and_their_cost(openai_setup: dict) -> None:
    url = openai_setup["gateway"].url
    before = scrape(url)
    client = sdk(openai_setup)
    usages = [client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"hello {i}"}]).usage
              for i in range(2)]
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "stream me"}],
                                                 stream=True, stream_options={"include_usage": True}))
    usages.append(chunks[-1].usage)
    after = scrape(url)

    where = {"endpoint": CHAT, "model": "gpt-4o-mini", "provider": "openai-main"}
    assert delta(before, after, "gateway_requests_total", **where, status="200") == 3
    prompt, completion = sum(u.prompt_tokens for u in usages), sum(u.completion_tokens for u in usages)
    assert prompt > 0 and completion > 0
    tokens = {"model": "gpt-4o-mini", "provider": "openai-main"}
    assert delta(before, after, "gateway_tokens_total", **tokens, kind="prompt") == prompt
    assert delta(before, after, "gateway_tokens_total", **tokens, kind="completion") == completion
    cost = (Decimal(prompt) * Decimal("0.15") + Decimal(completion) * Decimal("0.60")) / 1_000_000
    assert math.isclose(delta(before, after, "gateway_cost_usd_total", **tokens), float(cost), rel_tol=1e-6)

    # Histograms: every bucket is there, cumulative, and the +Inf one counts every call.
    assert delta(before, after, "gateway_request_duration_seconds_count", **where) == 3
    assert delta(before, after, "gateway_request_duration_seconds_bucket", **where, le="+Inf") == 3
    assert delta(before, after, "gateway_request_duration_seconds_sum", **where) > 0
    buckets = [(float(dict(labels)["le"]), v) for (name, labels), v in after.items()
               if name == "gateway_request_duration_seconds_bucket" and where.items() <= dict(labels).items()]
    assert sorted(le for le, _ in buckets) == [float(b) for b in metrics.DURATION_BUCKETS]
    counts = [v for _, v in sorted(buckets)]
    assert counts == sorted(counts)
    # A first token is timed for the stream only.
    assert delta(before, after, "gateway_time_to_first_token_seconds_count", **where) == 1
    assert delta(before, after, "gateway_time_to_first_token_seconds_bucket", **where, le="+Inf") == 1


def test_failed_upstream_attempts_are_counted_by_provider_and_cause(openai_setup: dict) -> None:
    fake = openai_setup["upstream"]
    backup = make_provider("backup", base_url=fake.base_url)
    make_model("with-fallback", (openai_setup["account"], "gpt-4o-mini"), (backup, "gpt-4o-mini"))
    dead = make_provider("dead", base_url=f"http://127.0.0.1:{free_port()}/v1")
    make_model("on-dead-host", (dead, "gpt-4o-mini"))
    client = sdk(openai_setup)
    url = openai_setup["gateway"].url
    before = scrape(url)

    fake.fail_next(503)  # the first deployment fails, the backup answers
    hello(client, "with-fallback")
    fake.fail_next(400)  # the request's own fault: not retried elsewhere, but still an upstream error
    with pytest.raises(openai.BadRequestError):
        hello(client, "gpt-4o-mini")
    with pytest.raises(openai.APIStatusError) as unreachable:
        hello(client, "on-dead-host")
    assert unreachable.value.status_code == 502
    after = scrape(url)

    errors = "gateway_upstream_errors_total"
    assert delta(before, after, errors, provider="openai-main", code="503") == 1
    assert delta(before, after, errors, provider="openai-main", code="400") == 1
    assert delta(before, after, errors, provider="dead", code="unreachable") == 1
    assert delta(before, after, errors, provider="backup") == 0
    assert delta(before, after, errors) == 3
    requests = "gateway_requests_total"
    assert delta(before, after, requests, model="with-fallback", provider="backup", status="200") == 1
    assert delta(before, after, requests, model="gpt-4o-mini", status="400") == 1
    assert delta(before, after, requests, model="on-dead-host", provider="dead", status="502") == 1


def test_a_limit_rejection_is_counted_by_its_limit(openai_setup: dict) -> None:
    client = sdk(openai_setup, make_token("one-a-minute", rpm=1))
    url = openai_setup["gateway"].url
    before = scrape(url)
    hello(client)
    with pytest.raises(openai.RateLimitError):
        hello(client)
    after = scrape(url)
    assert delta(before, after, "gateway_limit_rejections_total", limit="rpm") == 1
    assert delta(before, after, "gateway_limit_rejections_total") == 1
    assert delta(before, after, "gateway_requests_total", model="gpt-4o-mini", status="429") == 1
    assert delta(before, after, "gateway_upstream_errors_total") == 0  # (refused before any upstream call)


def test_random_model_names_do_not_make_new_label_values(openai_setup: dict) -> None:
    fake = openai_setup["upstream"]
    make_model("pass-*", (make_provider("passthrough", base_url=fake.base_url), ""))
    client = sdk(openai_setup)
    url = openai_setup["gateway"].url
    before = scrape(url)
    names = [f"attack-{secrets.token_hex(8)}" for _ in range(20)]
    for name in names:
        with pytest.raises(openai.NotFoundError):
            hello(client, name)
    served = [f"pass-{secrets.token_hex(8)}" for _ in range(5)]
    for name in served:
        hello(client, name)
    unauthenticated = httpx.post(f"{openai_setup['gateway'].v1}/chat/completions", json={"model": names[0]},
                                 headers={"Authorization": "Bearer sk-gw-not-a-token"}, timeout=10)
    assert unauthenticated.status_code == 401
    answer = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {METRICS_ON['METRICS_TOKEN']}"})
    after = scrape(url)

    assert delta(before, after, "gateway_requests_total", model="unknown", status="404") == 20
    assert delta(before, after, "gateway_requests_total", model="unknown", status="401") == 1
    assert delta(before, after, "gateway_requests_total", model="pass-*", provider="passthrough", status="200") == 5
    assert not [name for name in names + served if name in answer.text]
    for name in ("gateway_requests_total", "gateway_request_duration_seconds_count", "gateway_tokens_total"):
        new = label_values(after, name, "model") - label_values(before, name, "model")
        assert new <= {"unknown", "gpt-4o-mini", "pass-*"}


def test_a_batch_is_summed_into_the_same_histogram_observe_would_make() -> None:
    def observed(latency_ms: int, ttft_ms: int | None = None) -> Observation:
        row = {"endpoint": "unit-batch", "status_code": 200, "latency_ms": latency_ms, "ttft_ms": ttft_ms}
        return Observation(row, "m", "", "", ())

    metrics.record([observed(5), observed(30, 10), observed(30, 10), observed(2000), observed(400_000)])
    after = metrics_now()
    where = {"endpoint": "unit-batch", "model": "m", "provider": "none"}
    bucket = "gateway_request_duration_seconds_bucket"
    assert [value(after, bucket, **where, le=le) for le in ("0.01", "0.025", "0.05", "2.5", "300.0", "+Inf")] == \
        [1, 1, 3, 4, 4, 5]
    assert value(after, "gateway_request_duration_seconds_count", **where) == 5
    assert math.isclose(value(after, "gateway_request_duration_seconds_sum", **where), 402.065)
    assert value(after, "gateway_time_to_first_token_seconds_bucket", **where, le="0.01") == 2
    assert value(after, "gateway_time_to_first_token_seconds_count", **where) == 2


def metrics_now() -> Samples:
    from tests.gateway.usage.metrics_scrape import parse

    body, _ = metrics.exposition()
    return parse(body.decode())


def test_gauges_report_their_sources(openai_setup: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(metrics._sources, metrics.DEPLOYMENTS_IN_COOLDOWN, lambda: 3)
    samples = scrape(openai_setup["gateway"].url)
    assert value(samples, "gateway_deployments_in_cooldown") == 3
    assert ("gateway_log_queue_rows", frozenset()) in samples


def test_with_metrics_off_no_call_is_observed(openai_setup: dict) -> None:
    with override_settings(GATEWAY={"METRICS": False}):
        observer.drain()
        hello(sdk(openai_setup))
        assert observer.pending() == 0
