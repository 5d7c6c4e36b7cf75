"""Static files (gateway/edge/static.py): the admin's CSS served by the gateway itself, with WhiteNoise's
headers. Production mode runs in a real `manage.py gateway_serve` (gunicorn), from the files it collects."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.contrib.staticfiles import finders

from tests.servers import ROOT, ServedGateway

HOST = "gw.example.com"
# What a TLS-terminating proxy on the same machine sends (uvicorn trusts 127.0.0.1's X-Forwarded-Proto).
BEHIND_TLS = {"Host": HOST, "X-Forwarded-Proto": "https"}


def production_env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "DJANGO_ALLOWED_HOSTS": HOST,
            "DATABASE_URL": f"sqlite:///{tmp_path}/gateway.sqlite3", "DJANGO_STATIC_ROOT": str(tmp_path / "static")}


@pytest.fixture
def production_gateway(tmp_path: Path) -> Iterator[str]:
    # 120 s to answer: it migrates and collects the static files first (seconds on a busy machine).
    with ServedGateway(production_env(tmp_path), args=["--no-defaults"], health_headers={"Host": HOST},
                       start_timeout=120) as served:
        yield served.url


def test_in_production_the_admins_css_is_served_by_the_gateway_and_cached_for_good(production_gateway: str,
                                                                                  tmp_path: Path) -> None:
    login = httpx.get(f"{production_gateway}/admin/login/", headers=BEHIND_TLS)
    assert login.status_code == 200
    stylesheet = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', login.text)
    assert stylesheet, "the admin page does not link the collected, content-hashed stylesheet"
    css = httpx.get(production_gateway + stylesheet[1], headers={**BEHIND_TLS, "Accept-Encoding": "gzip"})
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "max-age=315360000" in css.headers["cache-control"] and "immutable" in css.headers["cache-control"]
    assert css.headers["content-encoding"] == "gzip"  # the copy compressed at collectstatic
    # (the collected copy: its url(...) references name the hashed files too)
    assert css.content == (tmp_path / "static" / stylesheet[1].removeprefix("/static/")).read_bytes()
    assert css.headers["x-content-type-options"] == "nosniff"
    # The plain name answers too (a page cached before an upgrade), with a short cache.
    plain = httpx.get(f"{production_gateway}/static/admin/css/base.css", headers=BEHIND_TLS)
    assert plain.status_code == 200 and plain.headers["cache-control"] == "max-age=60, public"
    assert httpx.get(f"{production_gateway}/static/admin/css/nope.css", headers=BEHIND_TLS).status_code == 404


def test_production_refuses_to_start_without_collected_static_files(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "import proxy_site.asgi"], cwd=ROOT, env=production_env(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "collectstatic" in done.stderr.strip().splitlines()[-1]


def test_a_static_file_answers_conditional_range_and_head_requests(live_gateway) -> None:
    url = f"{live_gateway.url}/static/admin/css/base.css"
    content = Path(finders.find("admin/css/base.css")).read_bytes()
    first = httpx.get(url)
    assert first.status_code == 200 and first.content == content
    assert httpx.get(url, headers={"If-None-Match": first.headers["etag"]}).status_code == 304
    part = httpx.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == content[10:20]
    head = httpx.head(url)
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(len(content))
    assert httpx.post(url).status_code == 405
