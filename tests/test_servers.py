"""tests/servers.py: a production server that cannot start is reported with what it printed."""

from __future__ import annotations

import os

import pytest

from tests.servers import ServedGateway


def test_a_server_that_exits_at_start_fails_with_its_output() -> None:
    served = ServedGateway({"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DJANGO_DEBUG": "false"})
    with pytest.raises(AssertionError, match=r"(?s)exited with code 1.*DJANGO_SECRET_KEY is not set"):
        served.start()
    assert served.process.returncode == 1
