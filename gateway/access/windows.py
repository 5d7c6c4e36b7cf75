"""The time windows limits count in, and how their resets are written.

- ``rpm`` and ``tpm`` count per calendar minute of the Unix clock (hh:mm:00 to hh:mm+1:00, the
  same instant on every instance): a request counts in the minute it starts, and the minute's
  end is when that window resets.
- Budgets count per period in ``settings.TIME_ZONE``: ``daily`` from midnight, ``weekly`` from
  Monday midnight, ``monthly`` from midnight on the 1st; ``total`` never resets.

Times are Unix seconds from the caller's clock (the limit policy's injectable ``clock``).
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings

MINUTE = 60
PERIODS = ("total", "daily", "weekly", "monthly")


def minute(now: float) -> tuple[int, float]:
    """(number, end) of the calendar minute holding ``now``."""
    number = int(now // MINUTE)
    return number, float((number + 1) * MINUTE)


# The last period computed per (name, TIME_ZONE): almost every request falls in the same one.
_last: dict[tuple[str, str], tuple[str, float, float]] = {}


def period(name: str, now: float) -> tuple[str, float | None, float | None]:
    """(label, start, end) of the budget period holding ``now``; ``("total", None, None)`` for total."""
    if name == "total":
        return "total", None, None
    key = (name, settings.TIME_ZONE)
    last = _last.get(key)
    if last is not None and last[1] <= now < last[2]:
        return last
    found = _period(name, now)
    _last[key] = found
    return found


def _period(name: str, now: float) -> tuple[str, float, float]:
    zone = ZoneInfo(settings.TIME_ZONE)
    day = datetime.fromtimestamp(now, zone).date()
    if name == "daily":
        start, end = day, day + timedelta(days=1)
    elif name == "weekly":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    elif name == "monthly":
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"unknown budget period {name!r} (expected one of {', '.join(PERIODS)})")
    return start.isoformat(), _midnight(start, zone), _midnight(end, zone)


def _midnight(day: date, zone: ZoneInfo) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()


def duration(seconds: float) -> str:
    """OpenAI's form of a reset time: "350ms", "1s", "6m0s", "3h0m5s" (whole seconds rounded up)."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    hours, rest = divmod(math.ceil(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def retry_after(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


def when(moment: float) -> str:
    """A period end for messages: "2026-12-01 00:00 UTC" (in TIME_ZONE)."""
    local = datetime.fromtimestamp(moment, ZoneInfo(settings.TIME_ZONE))
    return f"{local:%Y-%m-%d %H:%M} {settings.TIME_ZONE}"
