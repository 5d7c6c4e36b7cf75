"""Raw request-log growth: rows older than the retention are deleted in bounded batches (UsageDaily stays)."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from gateway.usage.daily import day_of, day_start

PRUNE_BATCH_SIZE = 5_000


def prune_cutoff(days: int) -> dt.datetime:
    """The first instant kept: the start (in settings.TIME_ZONE) of the day ``days`` days before today.
    Whole days go, so a day's aggregates can still be rebuilt from the raw rows that remain."""
    return day_start(day_of(timezone.now()) - dt.timedelta(days=days))


def prune(days: int, batch_size: int = PRUNE_BATCH_SIZE) -> int:
    """Delete the raw log rows from before ``prune_cutoff(days)``, ``batch_size`` rows per transaction
    (ids read first, then deleted by id: no long lock on the table). Returns how many were deleted."""
    from gateway.models import RequestLog

    if days < 0 or batch_size < 1:
        raise ValueError("days must be >= 0 and batch_size >= 1")
    old = RequestLog.objects.filter(created_at__lt=prune_cutoff(days)).order_by("id")
    deleted = 0
    while True:
        ids = list(old.values_list("id", flat=True)[:batch_size])
        if not ids:
            return deleted
        with transaction.atomic():
            deleted += RequestLog.objects.filter(id__in=ids).delete()[0]
