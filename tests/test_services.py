"""CI's second pass really runs on PostgreSQL and Redis (pytest --require-services)."""

from __future__ import annotations

import pytest
import redis
from django.db import connection


@pytest.mark.django_db
def test_the_suite_runs_on_the_configured_services(request: pytest.FixtureRequest, redis_url: str) -> None:
    if request.config.getoption("--require-services"):
        assert connection.vendor == "postgresql", "--require-services: DATABASE_URL must point at PostgreSQL"
    assert redis.Redis.from_url(redis_url).ping()
