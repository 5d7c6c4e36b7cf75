"""Cooldowns per deployment: counted failures within a window, Retry-After, resets, the order of attempts,
and the same state for every worker and instance through Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from django.test import override_settings

from gateway.routing import cooldowns as module
from gateway.routing.cooldown_redis import FAILS, UNTIL, RedisCooldowns
from gateway.routing.cooldown_store import MemoryStore, Store
from gateway.routing.cooldowns import Cooldowns, Policy, retry_after_seconds

NOW = 1_900_000_000.0
KEY = ("openai-main", "gpt-4o-mini")
OTHER = ("openai-backup", "gpt-4o-mini")
POLICY = (3, 60.0, 30.0)  # 3 failures within 60 s: 30 s of cooldown


def run(coroutine):
    return asyncio.run(coroutine)


def clean(url: str) -> None:
    import redis

    redis.Redis.from_url(url).delete(UNTIL, FAILS)


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    url = request.getfixturevalue("redis_url")
    clean(url)
    yield RedisCooldowns(url)
    clean(url)


def test_a_deployment_cools_after_n_failures_within_the_window(store: Store) -> None:
    for i in range(2):
        state = run(store.fail(KEY, POLICY, NOW + i, 0, "500 server_error: down"))
        assert KEY in state.failing and KEY not in state.cooling
    state = run(store.fail(KEY, POLICY, NOW + 2, 0, "500 server_error: down"))
    assert state.cooling[KEY].until == pytest.approx(NOW + 2 + 30)
    assert state.cooling[KEY].reason == "500 server_error: down"
    assert KEY not in state.failing and OTHER not in state.cooling
    assert run(store.read(NOW + 31)).cooling[KEY].until > NOW + 31
    assert KEY not in run(store.read(NOW + 33)).cooling  # over


def test_failures_spread_wider_than_the_window_never_cool_it(store: Store) -> None:
    for i in range(6):
        state = run(store.fail(KEY, POLICY, NOW + i * 40, 0, "timeout"))
        assert KEY not in state.cooling


def test_a_success_resets_the_count_and_ends_the_cooldown(store: Store) -> None:
    run(store.fail(KEY, POLICY, NOW, 0, "x"))
    run(store.fail(KEY, POLICY, NOW + 1, 0, "x"))
    assert KEY not in run(store.reset(KEY, NOW + 2)).failing
    assert KEY not in run(store.fail(KEY, POLICY, NOW + 3, 0, "x")).cooling  # counting again from 1
    for i in range(3):
        run(store.fail(KEY, POLICY, NOW + 4 + i, 0, "x"))
    assert KEY in run(store.read(NOW + 7)).cooling
    assert KEY not in run(store.reset(KEY, NOW + 8)).cooling


def test_retry_after_makes_the_cooldown_longer_never_shorter(store: Store) -> None:
    for _ in range(3):
        state = run(store.fail(KEY, POLICY, NOW, 120, "429 rate_limit_exceeded"))
    assert state.cooling[KEY].until == pytest.approx(NOW + 120)
    for _ in range(3):
        state = run(store.fail(OTHER, POLICY, NOW, 5, "429 rate_limit_exceeded"))
    assert state.cooling[OTHER].until == pytest.approx(NOW + 30)


def test_a_failure_during_the_cooldown_starts_a_new_one(store: Store) -> None:
    for _ in range(3):
        run(store.fail(KEY, POLICY, NOW, 0, "first"))
    state = run(store.fail(KEY, POLICY, NOW + 20, 0, "again"))  # tried as the last resort, failed again
    assert state.cooling[KEY].until == pytest.approx(NOW + 50) and state.cooling[KEY].reason == "again"


def test_two_instances_share_one_redis_state(redis_url: str) -> None:
    clean(redis_url)
    first, second = RedisCooldowns(redis_url), RedisCooldowns(redis_url)
    run(first.fail(KEY, POLICY, NOW, 0, "a"))
    run(second.fail(KEY, POLICY, NOW + 1, 0, "b"))
    assert KEY in first.read_sync(NOW + 1).failing
    state = run(first.fail(KEY, POLICY, NOW + 2, 0, "c"))  # the third failure, wherever it came from
    assert KEY in state.cooling
    assert second.read_sync(NOW + 3).cooling[KEY].reason == "c"
    run(second.reset(KEY, NOW + 4))
    assert KEY not in run(first.read(NOW + 4)).cooling
    clean(redis_url)


@pytest.mark.parametrize(("value", "seconds"), [
    ("120", 120.0), (" 7 ", 7.0), ("0", 0.0), ("99999999", 300.0), ("-5", 0.0), ("1e9", 0.0), ("soon", 0.0),
    ("", 0.0), (None, 0.0), ("1" * 100, 0.0), ("12\x00", 0.0),
])
def test_retry_after_in_seconds_is_bounded_and_junk_is_ignored(value: str | None, seconds: float) -> None:
    assert retry_after_seconds(value, NOW) == seconds


def test_retry_after_as_an_http_date() -> None:
    when = format_datetime(datetime.fromtimestamp(NOW + 90, UTC), usegmt=True)
    assert retry_after_seconds(when, NOW) == pytest.approx(90)
    assert retry_after_seconds(format_datetime(datetime.fromtimestamp(NOW - 90, UTC), usegmt=True), NOW) == 0
    with override_settings(GATEWAY={"COOLDOWN_MAX_RETRY_AFTER_SECONDS": 60}):
        assert retry_after_seconds(when, NOW) == 60


@pytest.fixture
def view(monkeypatch: pytest.MonkeyPatch) -> Cooldowns:
    monkeypatch.setattr(module, "clock", lambda: NOW)
    return Cooldowns()


def test_deployments_in_cooldown_are_tried_last_not_dropped(view: Cooldowns) -> None:
    items = ["a", "b", "c"]
    keys = {"a": ("a", "m"), "b": ("b", "m"), "c": ("c", "m")}

    async def scenario() -> list[str]:
        for _ in range(3):
            await view.failed(keys["a"], Policy(), "down")
        return await view.order(items, key=keys.__getitem__)

    with override_settings(GATEWAY={"COOLDOWN_FAILURES": 3}):
        assert run(scenario()) == ["b", "c", "a"]


def test_an_accounts_overrides_and_zero_failures_turning_cooldowns_off(view: Cooldowns) -> None:
    async def cooled(policy: Policy, failures: int) -> bool:
        view.clear()
        for _ in range(failures):
            await view.failed(KEY, policy, "down")
        return KEY in (await view.state()).cooling

    assert run(cooled(Policy(failures=1), 1))
    assert not run(cooled(Policy(failures=0), 10))
    with override_settings(GATEWAY={"COOLDOWN_FAILURES": 0}):
        assert not run(cooled(Policy(), 10))
        assert run(cooled(Policy(failures=2), 2))
    assert run(cooled(Policy(), 3)) and not run(cooled(Policy(), 2))


def test_a_workers_copy_of_redis_cooldowns_is_read_again_after_the_sync_interval(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request reads its worker's copy; another instance's cooldown shows once the copy is renewed."""
    monkeypatch.setattr(module, "clock", lambda: NOW)
    clean(redis_url)
    elsewhere = RedisCooldowns(redis_url)
    here = Cooldowns()

    async def scenario(sync: float) -> tuple[bool, bool]:
        with override_settings(GATEWAY={"COOLDOWN_SYNC_SECONDS": sync}):
            await here.state()  # the copy, read now
            for _ in range(3):
                await elsewhere.fail(KEY, POLICY, NOW, 0, "elsewhere")
            before = KEY in (await here.state()).cooling
            here._read_at = float("-inf")  # the interval has passed
            return before, KEY in (await here.state()).cooling

    with override_settings(REDIS_URL=redis_url):
        assert run(scenario(3600)) == (False, True)
    clean(redis_url)
