"""The three modes of proxy_site/settings.py (DJANGO_DEBUG unset / true / false), each read in a fresh
interpreter from an environment holding only what the test gives."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SECRET = secrets.token_urlsafe(50)
PRODUCTION = {"DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": SECRET, "DJANGO_ALLOWED_HOSTS": "gw.example.com"}
NAMES = ("MODE", "DEBUG", "ALLOWED_HOSTS", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS",
         "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE",
         "SECURE_PROXY_SSL_HEADER")


def python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run code with nothing in the environment but PATH and the given variables."""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env})


def settings_under(**env: str) -> dict:
    done = python(f"import json, proxy_site.settings as s; print(json.dumps({{n: getattr(s, n) for n in {NAMES}}}))",
                  **env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def refusal_under(**env: str) -> str:
    done = python("import proxy_site.settings", **env)
    assert done.returncode != 0
    return done.stderr.strip().splitlines()[-1]


def test_nothing_set_is_local_mode_loopback_only_over_plain_http() -> None:
    local = settings_under()
    assert local == {"MODE": "local", "DEBUG": False, "ALLOWED_HOSTS": ["localhost", "127.0.0.1", "[::1]"],
                     "SECURE_SSL_REDIRECT": False, "SECURE_HSTS_SECONDS": 0, "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
                     "SECURE_HSTS_PRELOAD": False, "SESSION_COOKIE_SECURE": False, "CSRF_COOKIE_SECURE": False,
                     "SECURE_PROXY_SSL_HEADER": None}


def test_debug_true_is_development_with_debug_pages() -> None:
    development = settings_under(DJANGO_DEBUG="true")
    assert development["MODE"] == "development" and development["DEBUG"] is True
    assert development["ALLOWED_HOSTS"] == ["localhost", "127.0.0.1", "[::1]"] and not development["SECURE_SSL_REDIRECT"]
    assert settings_under(DJANGO_ALLOWED_HOSTS="gw.lan,10.0.0.5")["ALLOWED_HOSTS"] == ["gw.lan", "10.0.0.5"]


def test_production_refuses_to_load_without_its_secret_key_or_host_names() -> None:
    assert "DJANGO_SECRET_KEY is not set" in refusal_under(DJANGO_DEBUG="false", DJANGO_ALLOWED_HOSTS="gw.example.com")
    assert "DJANGO_ALLOWED_HOSTS is not set" in refusal_under(DJANGO_DEBUG="false", DJANGO_SECRET_KEY=SECRET)
    assert "DJANGO_ALLOWED_HOSTS is not set" in refusal_under(**{**PRODUCTION, "DJANGO_ALLOWED_HOSTS": " , "})


def test_production_is_https_only_by_default() -> None:
    production = settings_under(**PRODUCTION)
    assert production == {"MODE": "production", "DEBUG": False, "ALLOWED_HOSTS": ["gw.example.com"],
                          "SECURE_SSL_REDIRECT": True, "SECURE_HSTS_SECONDS": 31_536_000,
                          "SECURE_HSTS_INCLUDE_SUBDOMAINS": True, "SECURE_HSTS_PRELOAD": False,
                          "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True, "SECURE_PROXY_SSL_HEADER": None}


def test_each_https_setting_can_be_switched_off_and_a_proxy_header_named() -> None:
    behind_proxy = settings_under(**PRODUCTION, DJANGO_SECURE_SSL_REDIRECT="false", DJANGO_SECURE_HSTS_SECONDS="0",
                                  DJANGO_SESSION_COOKIE_SECURE="false", DJANGO_CSRF_COOKIE_SECURE="no",
                                  DJANGO_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto")
    assert not behind_proxy["SECURE_SSL_REDIRECT"] and behind_proxy["SECURE_HSTS_SECONDS"] == 0
    assert not behind_proxy["SESSION_COOKIE_SECURE"] and not behind_proxy["CSRF_COOKIE_SECURE"]
    assert behind_proxy["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert settings_under(**PRODUCTION, DJANGO_SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO")[
        "SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_a_misspelt_switch_is_an_error_not_off() -> None:
    assert "DJANGO_DEBUG='maybe'" in refusal_under(DJANGO_DEBUG="maybe")
    assert "DJANGO_SECURE_SSL_REDIRECT='ture'" in refusal_under(**PRODUCTION, DJANGO_SECURE_SSL_REDIRECT="ture")


def test_check_deploy_passes_with_only_the_production_variables() -> None:
    done = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **PRODUCTION})
    assert done.returncode == 0, done.stdout + done.stderr


HTTPS_PROBE = """
import django, json
from proxy_site.settings import use_these_settings
use_these_settings(); django.setup()
from django.conf import settings
from django.test import Client, override_settings
# (no collectstatic here: the admin page links its CSS by the plain names, which is not what this checks)
override_settings(STORAGES={**settings.STORAGES, "staticfiles": {
    "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}).enable()
c = Client(HTTP_HOST="gw.example.com", raise_request_exception=False)
plain, secure, health = c.get("/admin/login/"), c.get("/admin/login/", secure=True), c.get("/health")
proxied = c.get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")
print(json.dumps({
    "plain": [plain.status_code, plain.get("Location")],
    "secure": [secure.status_code, secure.get("Strict-Transport-Security")],
    "health": health.status_code,
    "proxied": [proxied.status_code, proxied.get("Strict-Transport-Security")],
}))
"""


def test_production_redirects_plain_http_and_sends_hsts(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/empty.sqlite3"
    done = python(HTTPS_PROBE, **PRODUCTION, DATABASE_URL=database)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["plain"] == [301, "https://gw.example.com/admin/login/"]
    assert seen["secure"] == [200, "max-age=31536000; includeSubDomains"]
    assert seen["health"] != 301  # load balancers probe /health over plain HTTP
    assert seen["proxied"][0] == 301  # the proxy's header is not trusted unless named
    behind_proxy = json.loads(python(HTTPS_PROBE, **PRODUCTION, DATABASE_URL=database,
                                     DJANGO_SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO").stdout)
    assert behind_proxy["proxied"] == [200, "max-age=31536000; includeSubDomains"]


def test_local_mode_answers_loopback_names_only_on_both_paths(live_gateway) -> None:
    for host, allowed in (("localhost:8000", True), ("127.0.0.1", True), ("gw.example.com", False)):
        health = httpx.get(f"{live_gateway.url}/health", headers={"Host": host})
        hot = httpx.post(f"{live_gateway.v1}/chat/completions", headers={"Host": host}, json={})
        assert (health.status_code != 400, hot.status_code != 400) == (allowed, allowed), host


def test_log_bodies_is_off_all_or_errors_and_true_false_still_mean_all_off() -> None:
    def parsed(value: str) -> object:
        done = python("import json, proxy_site.settings as s; print(json.dumps(s.GATEWAY.get('LOG_BODIES')))",
                      GATEWAY_LOG_BODIES=value)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    assert [parsed(v) for v in ("off", "all", "errors", "ERRORS", "true", "false", "1", "no", "")] == \
           ["off", "all", "errors", "errors", "all", "off", "all", "off", None]
    assert "use off, all or errors" in refusal_under(GATEWAY_LOG_BODIES="failures")
