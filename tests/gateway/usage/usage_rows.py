"""Log rows with chosen times, teams, tokens, models and costs, and the GROUP BY of the raw log in Python."""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from decimal import Decimal

from gateway.models import RequestLog, UsageDaily
from gateway.usage.call import Call
from gateway.usage.daily import day_of

UTC = dt.UTC
DAY1 = dt.datetime(2026, 11, 30, 23, 59, 58, tzinfo=UTC)  # the last seconds of one day (UTC) ...
DAY2 = dt.datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)  # ... and the first of the next
CENT = Decimal("0.00000001")


def row(i: int, when: dt.datetime, team: int | None = None, token: int | None = None, model: str = "m1",
        provider: str = "p1", status: int = 200, prompt: int = 10, completion: int = 5,
        cost: Decimal | None = Decimal("0.001")) -> dict:
    values = Call("chat.completions", f"req_{i}").row()
    values.update(created_at=when, team_id=team, token_id=token, token_name=f"token-{token}" if token else "",
                  requested_model=model, provider_account=provider, status_code=status, prompt_tokens=prompt,
                  completion_tokens=completion, total_tokens=prompt + completion, cost=cost)
    return values


def mixed_rows(count: int, seed: int = 7, start: int = 0) -> list[dict]:
    """Rows of two teams (and none), two tokens (and none), two models, two providers, on two days; some
    failed, some of unknown cost."""
    rnd = random.Random(seed)
    rows = []
    for i in range(start, start + count):
        unknown = rnd.random() < 0.15
        rows.append(row(
            i, rnd.choice([DAY1, DAY2]) + dt.timedelta(microseconds=i), team=rnd.choice([None, 1, 2]),
            token=rnd.choice([None, 11, 12]), model=rnd.choice(["m1", "m2"]), provider=rnd.choice(["p1", "p2"]),
            status=rnd.choice([200, 200, 200, 429, 500]), prompt=rnd.randrange(0, 5000), completion=rnd.randrange(0, 900),
            cost=None if unknown else Decimal(rnd.randrange(0, 10**6)) * CENT,
        ))
    return rows


def sums(requests: int = 0, errors: int = 0, prompt: int = 0, completion: int = 0, cost: Decimal = Decimal(0),
         unknown: int = 0) -> tuple:
    return requests, errors, prompt, completion, Decimal(cost).quantize(CENT), unknown


def groups_of_raw_log() -> dict[tuple, tuple]:
    """UsageDaily as it should be: the raw log summed here, independently of gateway/usage/daily.py."""
    acc: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0, Decimal(0), 0])
    for r in RequestLog.objects.all():
        g = acc[(day_of(r.created_at), r.team_id or 0, r.token_id or 0, r.requested_model, r.provider_account)]
        g[0] += 1
        g[1] += r.status_code >= 400
        g[2] += r.prompt_tokens
        g[3] += r.completion_tokens
        if r.cost is None:
            g[5] += 1
        else:
            g[4] += r.cost
    return {key: sums(*g) for key, g in acc.items()}


def groups_of_aggregates() -> dict[tuple, tuple]:
    return {(u.day, u.team_id, u.token_id, u.model, u.provider):
            sums(u.requests, u.errors, u.prompt_tokens, u.completion_tokens, u.cost, u.unknown_cost_requests)
            for u in UsageDaily.objects.all()}
