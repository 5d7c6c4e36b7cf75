"""The Redis limit store: each check-and-take is one Lua script, so it is atomic for every worker and
instance that shares the Redis (one round trip on the event loop, gateway/access/redis_wire.py).
Requests that reach their check while a call is on its way go together in the next call (each
still all or nothing, in arrival order), and the settlements of finished requests travel in the
same call: under load a request with limits costs one script call, or a share of one.

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
from dataclasses import dataclass, field
from typing import Any

import redis
from asgiref.sync import sync_to_async

from gateway.access.database_store import logged_spend
from gateway.access.limits import BUDGET, Adjustments, Counter, Outcome, Store
from gateway.access.redis_wire import RedisWire

TIMEOUT = 2.0
SLOT_SET_MARGIN_MS = 3_600_000  # as in STEP

# One call first settles (the corrections and freed slots of requests that are over), then checks and
# takes for one request or for several (those that reached their check while the previous call was on
# its way), one after another: each request's take is all or nothing, and sees the settlements.
# KEYS: the settled counters, then every request's counters, in order. ARGV[1]: how many settled
# counters; then one per settled counter: "c<delta>" adds the delta (never below 0, never to a key
# that has gone), "s<holder>" removes the holder's slot; then, per request: "holder now n" (now in
# ms, n counters), then one string per counter, "kind limit amount expires seed": kind c (counter),
# b (budget) or s (slot set); expires in ms (0: never); seed the budget's spend when known, else "-".
# (Few arguments: each one costs encoding.) Answers, per request: {1, 0, values} taken, {0, i, values}
# refused at counter i, {-1, missing budget counters} when a budget must first be read from the
# request log (nothing taken).
STEP = """
local settled = tonumber(ARGV[1])
for i = 1, settled do
  local kind, arg = string.sub(ARGV[i + 1], 1, 1), string.sub(ARGV[i + 1], 2)
  if kind == 's' then
    redis.call('ZREM', KEYS[i], arg)
  elseif redis.call('EXISTS', KEYS[i]) == 1 then
    local value = redis.call('INCRBY', KEYS[i], arg)
    if value < 0 then redis.call('DECRBY', KEYS[i], value) end
  end
end

local function take(k, a, holder, now, n)
  local specs, values, absent, missing = {}, {}, {}, {}
  for i = 1, n do
    local key = KEYS[k + i]
    local kind, limit, amount, expires, seed = string.match(ARGV[a + i], '^(%a) (%d+) (%d+) (%d+) (%S+)$')
    specs[i] = {kind, tonumber(limit), amount, tonumber(expires), seed}
    if kind == 's' then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
      values[i] = redis.call('ZCARD', key)
    else
      local value = redis.call('GET', key)
      if value then
        values[i] = tonumber(value)
      else
        absent[i] = true
        values[i] = 0
        if kind == 'b' then
          if seed == '-' then missing[#missing + 1] = i else values[i] = tonumber(seed) end
        end
      end
    end
  end
  if #missing > 0 then return {-1, missing} end
  for i = 1, n do
    if values[i] + tonumber(specs[i][3]) > specs[i][2] then return {0, i, values} end
  end
  for i = 1, n do
    local key, kind, amount, expires, seed = KEYS[k + i], specs[i][1], specs[i][3], specs[i][4], specs[i][5]
    if kind == 's' then
      redis.call('ZADD', key, expires, holder)
      redis.call('PEXPIREAT', key, expires + 3600000)  -- the set outlives its newest lease by an hour
    else
      if absent[i] and kind == 'b' then redis.call('SET', key, seed) end
      redis.call('INCRBY', key, amount)
      if expires > 0 then redis.call('PEXPIREAT', key, expires) end
    end
  end
  return {1, 0, values}
end

local answers, k, a = {}, settled, settled + 2
while a <= #ARGV do
  local holder, now, n = string.match(ARGV[a], '^(%S+) (%d+) (%d+)$')
  n = tonumber(n)
  answers[#answers + 1] = take(k, a, holder, tonumber(now), n)
  k, a = k + n, a + n + 1
end
return answers
"""

# A settlement that frees no slot waits this long for a take to travel with (under load the next one
# comes sooner: one call per request, or fewer). One that frees a slot goes at once, since another
# worker's next request may be waiting for that slot.
SETTLE_DELAY = 0.01


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


@dataclass
class _Loop:
    """A store's connection on one event loop, and the calls waiting for the next script call."""

    wire: RedisWire
    takes: list[tuple[Sequence[Counter], str, list[str], asyncio.Future]] = field(default_factory=list)
    settles: list[tuple[list[str], list[str], asyncio.Future]] = field(default_factory=list)
    flushing: bool = False
    timer: asyncio.TimerHandle | None = None
    tasks: set[asyncio.Task] = field(default_factory=set)


class RedisStore(Store):
    """Counters in Redis: one connection per event loop (a worker has one), a sync client for DRF views.

    Takes are sent as they come, one script call at a time per loop: those that arrive while a call
    is on its way go together in the next one, with the settlements waiting (at low load a call per
    request, under load far fewer)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Loop] = weakref.WeakKeyDictionary()
        self._sync: tuple[Any, Any] | None = None

    def _state(self) -> _Loop:
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            state = self._loops[loop] = _Loop(RedisWire(self.url, TIMEOUT))
        return state

    @staticmethod
    def _args(counters: Sequence[Counter], holder: str, now: float, seeds: dict[int, int]) -> list[str]:
        args = [f"{holder} {_ms(now)} {len(counters)}"]
        for i, counter in enumerate(counters):
            kind = "s" if counter.slot else "b" if counter.kind == BUDGET else "c"
            expires = 0 if counter.expires_at is None else _ms(counter.expires_at)
            args.append(f"{kind} {counter.limit} {counter.amount} {expires} {seeds.get(i, '-')}")
        return args

    @staticmethod
    def _outcome(reply: list[Any]) -> Outcome:
        ok = reply[0] == 1
        return Outcome(ok, [int(value) for value in reply[2]], None if ok else int(reply[1]) - 1)

    async def take(self, counters: Sequence[Counter], holder: str, now: float) -> Outcome:
        state = self._state()
        reply = await self._queued(state, counters, self._args(counters, holder, now, {}), holder)
        if reply[0] == -1:  # budgets not in Redis yet: start them from the request log, once
            missing = [int(i) - 1 for i in reply[1]]
            found = await sync_to_async(lambda: [logged_spend(counters[i]) for i in missing])()
            seeds = dict(zip(missing, found, strict=True))
            reply = await self._queued(state, counters, self._args(counters, holder, now, seeds), holder)
        return self._outcome(reply)

    def _queued(self, state: _Loop, counters: Sequence[Counter], args: list[str], holder: str) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        state.takes.append((counters, holder, args, future))
        self._flush_now(state)
        return future

    def _flush_now(self, state: _Loop) -> None:
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        if not state.flushing:
            state.flushing = True
            self._background(state, self._flush(state))

    @staticmethod
    def _background(state: _Loop, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)

    async def _flush(self, state: _Loop) -> None:
        try:
            while state.takes or state.settles:
                takes, state.takes = state.takes, []
                settles, state.settles = state.settles, []
                settled = [key for keys, _, _ in settles for key in keys]
                keys = [*settled, *(counter.key for counters, _, _, _ in takes for counter in counters)]
                args = [str(len(settled)), *(arg for _, args, _ in settles for arg in args),
                        *(arg for _, _, args, _ in takes for arg in args)]
                try:
                    replies = await state.wire.run_script(STEP, keys, args)
                    if len(replies) != len(takes):
                        raise RuntimeError(f"the limits script answered {len(replies)} of {len(takes)} requests")
                except Exception as exc:
                    for *_, future in (*takes, *settles):
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for *_, future in settles:
                    if not future.done():
                        future.set_result(None)
                for (counters, holder, _, future), reply in zip(takes, replies, strict=True):
                    if not future.done():
                        future.set_result(reply)
                    elif reply[0] == 1:  # its request went away meanwhile: give back what it took
                        undo = [(counter, 0 if counter.slot else -counter.amount) for counter in counters]
                        self._background(state, self.settle_many([(undo, holder)]))
        finally:
            state.flushing = False

    def take_sync(self, counters: Sequence[Counter], holder: str, now: float) -> Outcome:
        if self._sync is None:
            client = redis.Redis.from_url(self.url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
            self._sync = (client, client.register_script(STEP))
        step = self._sync[1]
        keys = [counter.key for counter in counters]
        reply = step(keys=keys, args=["0", *self._args(counters, holder, now, {})])[0]
        if reply[0] == -1:
            seeds = {int(i) - 1: logged_spend(counters[int(i) - 1]) for i in reply[1]}
            reply = step(keys=keys, args=["0", *self._args(counters, holder, now, seeds)])[0]
        return self._outcome(reply)

    async def settle_many(self, batch: Sequence[tuple[Adjustments, str]]) -> None:
        """Queued for the next script call: at once when it frees a slot, else within SETTLE_DELAY."""
        deltas: dict[str, int] = {}
        freed: list[tuple[str, str]] = []
        for adjustments, holder in batch:
            for counter, delta in adjustments:
                if counter.slot:
                    freed.append((counter.key, holder))
                elif delta:
                    deltas[counter.key] = deltas.get(counter.key, 0) + delta
        if not deltas and not freed:
            return
        state = self._state()
        future = asyncio.get_running_loop().create_future()
        state.settles.append(([*deltas, *(key for key, _ in freed)],
                              [*(f"c{delta}" for delta in deltas.values()), *(f"s{holder}" for _, holder in freed)],
                              future))
        if freed:
            self._flush_now(state)
        elif not state.flushing and state.timer is None:
            state.timer = asyncio.get_running_loop().call_later(SETTLE_DELAY, self._flush_now, state)
        await future

    async def renew(self, slots: Sequence[tuple[str, str]], until: float) -> None:
        wire = self._state().wire  # (the calls are pipelined on the one connection)
        await asyncio.gather(*(call for key, holder in slots for call in (
            wire.call("ZADD", key, "XX", _ms(until), holder),
            wire.call("PEXPIREAT", key, _ms(until) + SLOT_SET_MARGIN_MS))))

    async def peek(self, counters: Sequence[Counter], now: float) -> list[int]:
        values = await self._state().wire.call("MGET", *(counter.key for counter in counters))
        return [int(value) if value is not None else 0 for value in values]

    async def close(self) -> None:
        """Close this event loop's connection (the process's connections otherwise live as long as their loops)."""
        state = self._loops.pop(asyncio.get_running_loop(), None)
        if state is not None:
            if state.timer is not None:
                state.timer.cancel()
            state.wire.close()
