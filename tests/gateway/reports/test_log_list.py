"""The request-log list page: team and token filters from their tables, bounded counts, no full COUNT."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from gateway.models import ApiToken, RequestLog, Team
from gateway.reports import log_list

pytestmark = pytest.mark.django_db

URL = reverse("admin:gateway_requestlog_changelist")


@pytest.fixture
def logs() -> dict[str, object]:
    red, blue = Team.objects.create(name="red"), Team.objects.create(name="blue")
    t1 = ApiToken.objects.create(name="ci", team=red, digest="d1", prefix="sk-gw-a")
    t2 = ApiToken.objects.create(name="web", team=blue, digest="d2", prefix="sk-gw-b")
    now = timezone.now()
    for i, (team, token) in enumerate([(red, t1), (red, t1), (blue, t2), (None, None)]):
        RequestLog.objects.create(created_at=now, request_id=f"req_{i}", endpoint="chat.completions",
                                  status_code=200 if i else 503, team=team, token=token,
                                  token_name=token.name if token else "", requested_model=f"m{i % 2}",
                                  provider_account="acct")
    return {"red": red, "blue": blue, "t1": t1, "t2": t2}


def shown(page: str) -> set[str]:
    """The request ids of the rows listed (each row links to its own page)."""
    ids = {int(pk) for pk in re.findall(r"/requestlog/(\d+)/change/", page)}
    return set(RequestLog.objects.filter(pk__in=ids).values_list("request_id", flat=True))


def test_team_and_token_filters_select_their_rows(admin_client: Client, logs: dict) -> None:
    page = admin_client.get(URL).content.decode()
    assert shown(page) == {"req_0", "req_1", "req_2", "req_3"}
    assert "?team=" in page and "?token=" in page and "ci (sk-gw-a…)" in page
    assert shown(admin_client.get(URL, {"team": logs["red"].pk}).content.decode()) == {"req_0", "req_1"}
    assert shown(admin_client.get(URL, {"team": logs["blue"].pk}).content.decode()) == {"req_2"}
    assert shown(admin_client.get(URL, {"token": logs["t2"].pk}).content.decode()) == {"req_2"}
    both = admin_client.get(URL, {"team": logs["red"].pk, "token": logs["t2"].pk}).content.decode()
    assert shown(both) == set()


def test_model_provider_and_status_filters(admin_client: Client, logs: dict) -> None:
    assert shown(admin_client.get(URL, {"model": "m1"}).content.decode()) == {"req_1", "req_3"}
    assert shown(admin_client.get(URL, {"provider": "acct"}).content.decode()) == {"req_0", "req_1", "req_2", "req_3"}
    assert shown(admin_client.get(URL, {"status": "5xx"}).content.decode()) == {"req_0"}
    assert shown(admin_client.get(URL, {"status": "200"}).content.decode()) == {"req_1", "req_2", "req_3"}
    assert shown(admin_client.get(URL, {"stream__exact": "0"}).content.decode()) == {"req_0", "req_1", "req_2", "req_3"}


def test_the_page_never_counts_or_scans_the_whole_log(admin_client: Client, logs: dict) -> None:
    table = RequestLog._meta.db_table
    for params in ({}, {"team": logs["red"].pk}, {"token": logs["t1"].pk}, {"model": "m0"}):
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(URL, params).status_code == 200
        on_log = [q["sql"] for q in captured.captured_queries if f'"{table}"' in q["sql"]]
        assert on_log, params
        for sql in on_log:
            assert "DISTINCT" not in sql.upper(), sql
            if "COUNT(" in sql.upper():  # only ever over a LIMITed subquery
                assert re.search(r"COUNT\(\*\).*FROM \(SELECT .* LIMIT \d+\)", sql, re.S), sql


def test_the_count_is_capped(admin_client: Client, logs: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_list.BoundedCountPaginator, "CAP", 2)
    paginator = log_list.BoundedCountPaginator(RequestLog.objects.order_by("-created_at"), 1)
    assert paginator.count == 2 and paginator.num_pages == 2 and paginator.bound == "cap"
    exact = log_list.BoundedCountPaginator(RequestLog.objects.filter(team=logs["blue"]), 1)
    assert exact.count == 1 and exact.bound == ""
    assert "2 or more request logs" in admin_client.get(URL).content.decode()


def test_unfiltered_postgres_uses_its_row_estimate(logs: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_list.BoundedCountPaginator, "CAP", 2)
    monkeypatch.setattr(log_list, "table_estimate", lambda queryset: 1_000_000)
    paginator = log_list.BoundedCountPaginator(RequestLog.objects.all(), 50)
    assert paginator.count == 1_000_000 and paginator.bound == "estimate"
    filtered = log_list.BoundedCountPaginator(RequestLog.objects.filter(team=logs["red"]), 50)
    assert filtered.count == 2 and filtered.bound == "cap"  # filtered: counted (up to the cap)


def test_table_estimate_reads_pg_class_on_postgres_only(logs: dict) -> None:
    estimate = log_list.table_estimate(RequestLog.objects.all())
    if connection.vendor == "postgresql":
        assert estimate is None or estimate > 0  # None until the table was analysed
    else:
        assert estimate is None


def test_cost_is_shown_in_usd(admin_client: Client, logs: dict) -> None:
    from decimal import Decimal

    RequestLog.objects.filter(request_id="req_1").update(cost=Decimal("0.0125"))
    page = admin_client.get(URL).content.decode()
    assert "$0.0125" in page and "cost (usd)" in page.lower()  # the column says USD, the cell $
