"""The Redis limit store: each check-and-take is one Lua script, so it is atomic for every worker and
instance that shares the Redis (redis-py's asyncio client on the event loop; one round trip).

Keys (``gw:lim:<tok|team>:<id>:...``): a string per rpm/tpm window and per budget period
(integers: requests, tokens, 1e-8 USD), expiring after their window; a sorted set per parallel
limit whose members are the requests in flight, scored by the end of their lease. A budget key
that does not exist yet is seeded from the request log (the script answers which ones are
missing, the store reads their spend and runs the script again with it). Counts are Redis
integers; the script compares them as Lua numbers, exact below 2**53 (budgets are capped at
10,000,000 USD for that).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async

from gateway.access.database_store import logged_spend
from gateway.access.limits import BUDGET, Counter, Outcome, Store

TIMEOUT = 2.0
SLOT_SET_MARGIN_MS = 3_600_000  # as in TAKE

# KEYS: the counters. ARGV[1]: now (ms); then six per counter: kind ("c" counter, "b" budget, "s" slot
# set), limit, amount, expires at (ms; "0": never), seed ("" unknown; budgets only), holder (slots only).
# Answers {1, 0, values} taken, {0, i, values} refused at counter i, {-1, missing budget counters}.
TAKE = """
local now = tonumber(ARGV[1])
local values, absent, missing = {}, {}, {}
for i = 1, #KEYS do
  local a = 2 + (i - 1) * 6
  local kind = ARGV[a]
  if kind == 's' then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    values[i] = redis.call('ZCARD', KEYS[i])
  else
    local value = redis.call('GET', KEYS[i])
    if value then
      values[i] = tonumber(value)
    else
      absent[i] = true
      values[i] = 0
      if kind == 'b' then
        if ARGV[a + 4] == '' then missing[#missing + 1] = i else values[i] = tonumber(ARGV[a + 4]) end
      end
    end
  end
end
if #missing > 0 then return {-1, missing} end
for i = 1, #KEYS do
  local a = 2 + (i - 1) * 6
  if values[i] + tonumber(ARGV[a + 2]) > tonumber(ARGV[a + 1]) then return {0, i, values} end
end
for i = 1, #KEYS do
  local a = 2 + (i - 1) * 6
  local expires = tonumber(ARGV[a + 3])
  if ARGV[a] == 's' then
    redis.call('ZADD', KEYS[i], expires, ARGV[a + 5])
    redis.call('PEXPIREAT', KEYS[i], expires + 3600000)  -- the set outlives its newest lease by an hour
  else
    if absent[i] and ARGV[a] == 'b' then redis.call('SET', KEYS[i], ARGV[a + 4]) end
    redis.call('INCRBY', KEYS[i], ARGV[a + 2])
    if expires > 0 then redis.call('PEXPIREAT', KEYS[i], expires) end
  end
end
return {1, 0, values}
"""

# KEYS: counters; ARGV: two per counter: kind ("c" or "s"), then the delta or the holder to remove.
SETTLE = """
for i = 1, #KEYS do
  local kind, arg = ARGV[2 * i - 1], ARGV[2 * i]
  if kind == 's' then
    redis.call('ZREM', KEYS[i], arg)
  elseif redis.call('EXISTS', KEYS[i]) == 1 then
    local value = redis.call('INCRBY', KEYS[i], arg)
    if value < 0 then redis.call('DECRBY', KEYS[i], value) end
  end
end
return 1
"""


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


class RedisStore(Store):
    """Counters in Redis: one client per event loop (a worker has one), a sync client for DRF views."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Any, Any, Any]] = (
            weakref.WeakKeyDictionary())
        self._sync: tuple[Any, Any] | None = None

    def _async(self) -> tuple[Any, Any, Any]:
        loop = asyncio.get_running_loop()
        found = self._clients.get(loop)
        if found is None:
            client = aioredis.Redis.from_url(self.url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
            found = self._clients[loop] = (client, client.register_script(TAKE), client.register_script(SETTLE))
        return found

    @staticmethod
    def _args(counters: Sequence[Counter], holder: str, now: float, seeds: dict[int, int]) -> list[Any]:
        args: list[Any] = [_ms(now)]
        for i, counter in enumerate(counters):
            kind = "s" if counter.slot else "b" if counter.kind == BUDGET else "c"
            expires = 0 if counter.expires_at is None else _ms(counter.expires_at)
            args += [kind, counter.limit, counter.amount, expires, seeds.get(i, ""), holder]
        return args

    @staticmethod
    def _outcome(reply: list[Any]) -> Outcome:
        ok = reply[0] == 1
        return Outcome(ok, [int(value) for value in reply[2]], None if ok else int(reply[1]) - 1)

    async def take(self, counters: Sequence[Counter], holder: str, now: float) -> Outcome:
        _, take, _ = self._async()
        keys = [counter.key for counter in counters]
        seeds: dict[int, int] = {}
        reply = await take(keys=keys, args=self._args(counters, holder, now, seeds))
        if reply[0] == -1:  # budgets not in Redis yet: start them from the request log, once
            missing = [int(i) - 1 for i in reply[1]]
            found = await sync_to_async(lambda: [logged_spend(counters[i]) for i in missing])()
            seeds = dict(zip(missing, found, strict=True))
            reply = await take(keys=keys, args=self._args(counters, holder, now, seeds))
        return self._outcome(reply)

    def take_sync(self, counters: Sequence[Counter], holder: str, now: float) -> Outcome:
        if self._sync is None:
            client = redis.Redis.from_url(self.url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
            self._sync = (client, client.register_script(TAKE))
        take = self._sync[1]
        keys = [counter.key for counter in counters]
        reply = take(keys=keys, args=self._args(counters, holder, now, {}))
        if reply[0] == -1:
            missing = [int(i) - 1 for i in reply[1]]
            seeds = {i: logged_spend(counters[i]) for i in missing}
            reply = take(keys=keys, args=self._args(counters, holder, now, seeds))
        return self._outcome(reply)

    async def settle(self, adjustments: Sequence[tuple[Counter, int]], holder: str) -> None:
        changed = [(counter, delta) for counter, delta in adjustments if counter.slot or delta]
        if not changed:
            return
        _, _, settle = self._async()
        args: list[Any] = []
        for counter, delta in changed:
            args += ["s", holder] if counter.slot else ["c", delta]
        await settle(keys=[counter.key for counter, _ in changed], args=args)

    async def renew(self, slots: Sequence[tuple[str, str]], until: float) -> None:
        client, _, _ = self._async()
        async with client.pipeline(transaction=False) as pipe:
            for key, holder in slots:
                pipe.zadd(key, {holder: _ms(until)}, xx=True)
                pipe.pexpireat(key, _ms(until) + SLOT_SET_MARGIN_MS)
            await pipe.execute()

    async def peek(self, counters: Sequence[Counter], now: float) -> list[int]:
        client, _, _ = self._async()
        values = await client.mget([counter.key for counter in counters])
        return [int(value) if value is not None else 0 for value in values]

    async def close(self) -> None:
        """Close this event loop's client (the process's clients otherwise live as long as their loops)."""
        found = self._clients.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found[0].aclose()
