"""Times the admin's usage report and request-log list over a large log, on Postgres.

    .venv/bin/python bench/admin_pages.py                   # 1,000,000 rows over 60 days
    .venv/bin/python bench/admin_pages.py --rows 200000 --keep

Creates the database ``--database`` on ``--admin-url`` (refuses one that exists), migrates it
(``manage.py migrate``), fills it on the server (INSERT ... SELECT FROM generate_series, in chunks):
teams, tokens, provider names and models, then ``--rows`` request-log rows spread over ``--days``
days and their UsageDaily rows (one GROUP BY INSERT ... SELECT), ANALYZEs it, then loads each page
with Django's test Client logged in as a superuser: one warm-up and ``--runs`` timed loads each. It
drops the database at the end unless ``--keep``. Never point it at a database you care about.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
TEAMS, TOKENS = 6, 24
MODELS = ("gpt-4o", "gpt-4o-mini", "llama-3.1-70b", "llama-3.1-8b", "mistral-large", "qwen-2.5-72b",
          "text-embedding-3-small", "o3-mini")
PROVIDERS = ("acct-east", "acct-west", "acct-backup", "acct-cheap")
CHUNK = 100_000

LOG_COLUMNS = ("created_at, request_id, token_id, token_name, team_id, session_id, endpoint, requested_model, "
               "resolved_model, provider_kind, provider_account, status_code, error_type, error_message, "
               "prompt_tokens, completion_tokens, total_tokens, usage_estimated, cost, latency_ms, ttft_ms, "
               "stream, attempts, request_body, response_body")
# Row g: token g mod TOKENS (its team), model and provider from g, ~2% 5xx and ~4% 429, 1 in 17 of
# unknown cost, created at a random moment of the last DAYS days.
LOG_ROWS = f"""
WITH tok AS (SELECT array_agg(id ORDER BY id) AS ids, array_agg(name ORDER BY id) AS names,
                    array_agg(team_id ORDER BY id) AS teams FROM gateway_apitoken),
     g AS (SELECT g, 50 + (g * 7919) %% 2000 AS pt, 10 + (g * 104729) %% 800 AS ct
           FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g)
INSERT INTO gateway_requestlog ({LOG_COLUMNS})
SELECT now() - random() * (%(days)s * interval '1 day'), 'req_' || g, tok.ids[1 + g %% {TOKENS}],
       tok.names[1 + g %% {TOKENS}], tok.teams[1 + g %% {TOKENS}],
       CASE WHEN g %% 10 = 0 THEN 'sess-' || (g %% 5000) ELSE '' END, 'chat.completions',
       (%(models)s::text[])[1 + (g / 7) %% {len(MODELS)}], (%(models)s::text[])[1 + (g / 7) %% {len(MODELS)}],
       'openai', (%(providers)s::text[])[1 + (g / 3) %% {len(PROVIDERS)}],
       CASE WHEN g %% 50 = 0 THEN 502 WHEN g %% 23 = 0 THEN 429 ELSE 200 END, '', '', pt, ct, pt + ct, false,
       CASE WHEN g %% 17 = 0 THEN NULL ELSE (pt * 0.0000025 + ct * 0.00001)::numeric(14, 8) END,
       100 + g %% 900, NULL, g %% 3 = 0, 1, '', ''
FROM g, tok
"""
USAGE_ROWS = """
INSERT INTO gateway_usagedaily (day, team_id, team_name, token_id, token_name, model, provider, requests, errors,
                                prompt_tokens, completion_tokens, cost, unknown_cost_requests)
SELECT (l.created_at AT TIME ZONE %(tz)s)::date, coalesce(l.team_id, 0), coalesce(max(t.name), ''),
       coalesce(l.token_id, 0), max(l.token_name), l.requested_model, l.provider_account, count(*),
       count(*) FILTER (WHERE l.status_code >= 400), sum(l.prompt_tokens), sum(l.completion_tokens),
       coalesce(sum(l.cost), 0), count(*) FILTER (WHERE l.cost IS NULL)
FROM gateway_requestlog l LEFT JOIN gateway_team t ON t.id = l.team_id
GROUP BY 1, 2, 4, 6, 7
"""


def libpq(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


def database_url(admin_url: str, name: str) -> str:
    return admin_url.rsplit("/", 1)[0] + "/" + name


def create(admin_url: str, name: str) -> None:
    with psycopg.connect(libpq(admin_url), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            sys.exit(f"database {name} exists: drop it or choose another --database")
        conn.execute(f'CREATE DATABASE "{name}"')


def drop(admin_url: str, name: str) -> None:
    with psycopg.connect(libpq(admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fill(url: str, rows: int, days: int, tz: str) -> None:
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        for t in range(1, TEAMS + 1):
            conn.execute("INSERT INTO gateway_team (name, description, created_at) VALUES (%s, '', now())",
                         [f"team-{t}"])
        teams = [r[0] for r in conn.execute("SELECT id FROM gateway_team ORDER BY id")]
        for k in range(1, TOKENS + 1):
            conn.execute("INSERT INTO gateway_apitoken (name, team_id, prefix, digest, active, allowed_models, "
                         "created_at) VALUES (%s, %s, %s, %s, true, '', now())",
                         [f"token-{k}", teams[k % TEAMS], f"sk-gw-{k:04d}", f"bench-digest-{k}"])
        started = time.perf_counter()
        for lo in range(1, rows + 1, CHUNK):
            conn.execute(LOG_ROWS, {"lo": lo, "hi": min(lo + CHUNK - 1, rows), "days": days,
                                    "models": list(MODELS), "providers": list(PROVIDERS)})
        print(f"request log: {rows:,} rows in {time.perf_counter() - started:.1f} s", flush=True)
        started = time.perf_counter()
        conn.execute(USAGE_ROWS, {"tz": tz})
        count = conn.execute("SELECT count(*) FROM gateway_usagedaily").fetchone()[0]
        print(f"usage daily: {count:,} rows in {time.perf_counter() - started:.1f} s", flush=True)
        conn.execute("VACUUM ANALYZE")


def pages(days: int) -> list[tuple[str, str]]:
    """(name, path) of every page timed; ids and names are the ones fill() made."""
    import datetime as dt

    from django.utils import timezone

    from gateway.models import ApiToken, Team

    today = timezone.localdate()
    since = (today - dt.timedelta(days=days - 1)).isoformat()
    team, token = Team.objects.order_by("id").first(), ApiToken.objects.order_by("id").first()
    log = "/admin/gateway/requestlog/"
    return [
        ("usage: this month (default)", "/admin/usage/"),
        (f"usage: last {days} days, by model", f"/admin/usage/?from={since}&to={today}"),
        (f"usage: last {days} days, by team+token+model+provider",
         f"/admin/usage/?from={since}&to={today}&by=team&by=token&by=model&by=provider"),
        (f"usage: last {days} days, CSV by token+model", f"/admin/usage/?from={since}&to={today}&by=token&by=model"
                                                           "&format=csv"),
        ("log list: unfiltered", log),
        ("log list: team", f"{log}?team={team.pk}"),
        ("log list: token", f"{log}?token={token.pk}"),
        ("log list: model", f"{log}?model={MODELS[2]}"),
        ("log list: provider", f"{log}?provider={PROVIDERS[1]}"),
        ("log list: status 5xx", f"{log}?status=5xx"),
        ("log list: team, page 50", f"{log}?team={team.pk}&p=50"),
    ]


def measure(runs: int, days: int, verbose: bool) -> list[tuple[str, float, float, float, int, float]]:
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    user = (User.objects.filter(username="bench-admin").first()
            or User.objects.create_superuser("bench-admin", "bench@example.invalid", "bench-only-password-1"))
    client = Client()
    client.force_login(user)
    results = []
    for name, path in pages(days):
        assert client.get(path).status_code == 200, path  # warm-up (and a check)
        times = []
        for _ in range(runs):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, path
        queries = captured.captured_queries
        slowest = max(queries, key=lambda q: float(q["time"]))
        results.append((name, min(times), statistics.median(times), max(times), len(queries),
                        sum(float(q["time"]) for q in queries) * 1000))
        if verbose:
            print(f"{name}: slowest query {float(slowest['time']) * 1000:.1f} ms: {slowest['sql'][:300]}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--admin-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", default="hreport_big")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the database (and reuse it with --reuse)")
    parser.add_argument("--verbose", action="store_true", help="print each page's slowest query")
    parser.add_argument("--reuse", action="store_true", help="time an existing, filled database")
    args = parser.parse_args()
    url = database_url(args.admin_url, args.database)
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "proxy_site.settings",
           "DJANGO_ALLOWED_HOSTS": "testserver", "GATEWAY_LOG_LEVEL": "WARNING"}
    env.pop("REDIS_URL", None)
    os.environ.clear()
    os.environ.update(env)  # for django.setup() in this process
    sys.path.insert(0, str(ROOT))
    try:
        if not args.reuse:
            create(args.admin_url, args.database)
            subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
            fill(url, args.rows, args.days, "UTC")
        results = measure(args.runs, args.days, args.verbose)
    finally:
        if not args.keep:
            drop(args.admin_url, args.database)
    print(f"\n{args.rows:,} log rows over {args.days} days; {args.runs} timed loads per page (after one warm-up)\n")
    print("| page | min ms | median ms | max ms | queries | of which SQL ms (last run) |\n|---|---:|---:|---:|---:|---:|")
    for name, low, mid, high, queries, sql in results:
        print(f"| {name} | {low:.1f} | {mid:.1f} | {high:.1f} | {queries} | {sql:.1f} |")


if __name__ == "__main__":
    main()
