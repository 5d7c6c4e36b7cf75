"""Admin login throttling: per username and per client address, in Django's cache (Redis in CI's second pass)."""

from __future__ import annotations

import logging
import secrets
import time

import pytest
import redis
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from django.urls import reverse

from gateway.access.admin_login import _key

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    """(Django's default hasher takes a good part of a second per attempt: the window test needs speed.)"""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def address() -> str:
    """A client address of this test's own, so that no other test's failures count against it."""
    return f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"


def make_admin() -> str:
    username = f"admin-{secrets.token_hex(4)}"
    get_user_model().objects.create_superuser(username, f"{username}@example.com", PASSWORD)
    return username


def log_in(username: str, password: str, address: str) -> tuple[bool, str]:
    """(logged in, the page's text) for one attempt at the admin's login form."""
    client = Client(REMOTE_ADDR=address)
    response = client.post(reverse("admin:login"), {"username": username, "password": password,
                                                    "next": reverse("admin:index")})
    return response.status_code == 302 and "_auth_user_id" in client.session, response.content.decode()


def test_the_sixth_attempt_is_refused_even_with_the_right_password(address: str,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    username = make_admin()
    with caplog.at_level(logging.WARNING, logger="gateway.access.admin_login"):
        for _ in range(5):
            ok, page = log_in(username, "wrong", address)
            assert not ok and "Please enter the correct username and password" in page
    assert any(username in record.getMessage() for record in caplog.records)  # the operator hears of it
    ok, page = log_in(username, PASSWORD, address)
    assert not ok and "Too many failed login attempts" in page and "Try again in 15 minute(s)" in page
    # The username is refused from any address, and with its letters in another case.
    assert not log_in(username.upper(), PASSWORD, f"{address}0")[0]


def test_another_user_from_the_same_address_is_unaffected(address: str) -> None:
    locked, other = make_admin(), make_admin()
    for _ in range(6):
        log_in(locked, "wrong", address)
    assert not log_in(locked, PASSWORD, address)[0]
    assert log_in(other, PASSWORD, address)[0]


def test_one_address_trying_many_usernames_is_refused(address: str) -> None:
    username = make_admin()
    for i in range(20):
        log_in(f"guess-{i}-{secrets.token_hex(2)}", "wrong", address)
    ok, page = log_in(username, PASSWORD, address)
    assert not ok and "Too many failed login attempts" in page
    assert log_in(username, PASSWORD, f"2001:db8::{secrets.token_hex(3)}")[0]  # from elsewhere it works


def test_after_the_window_the_right_password_works_again(address: str) -> None:
    username = make_admin()
    with override_settings(GATEWAY={"ADMIN_LOGIN_WINDOW_SECONDS": 2}):
        for _ in range(5):
            log_in(username, "wrong", address)
        assert not log_in(username, PASSWORD, address)[0]
        time.sleep(2.2)
        assert log_in(username, PASSWORD, address)[0]


def test_a_successful_login_clears_the_usernames_count(address: str) -> None:
    username = make_admin()
    for _ in range(4):
        log_in(username, "wrong", address)
    assert log_in(username, PASSWORD, address)[0]
    for _ in range(4):
        log_in(username, "wrong", address)
    assert log_in(username, PASSWORD, address)[0]  # 8 failures in all, never 5 in a row


def test_zero_switches_a_counter_off(address: str) -> None:
    username = make_admin()
    with override_settings(GATEWAY={"ADMIN_LOGIN_MAX_FAILURES_PER_USER": 0, "ADMIN_LOGIN_MAX_FAILURES_PER_IP": 0}):
        for _ in range(8):
            log_in(username, "wrong", address)
        assert log_in(username, PASSWORD, address)[0]


def test_with_redis_the_counts_are_shared_by_every_worker(address: str, redis_url: str) -> None:
    username = make_admin()
    log_in(username, "wrong", address)
    stored = redis.Redis.from_url(redis_url).keys(f"*{_key('user', username)}")
    assert stored, "the failure count is not in Redis"
