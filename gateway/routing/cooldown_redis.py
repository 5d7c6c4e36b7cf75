"""Cooldowns in Redis, shared by every worker and instance: each operation is one Lua script (atomic)
that also answers the whole state, so a worker's copy is fresh after each failure it reports.

Two hashes, fields ``<account>\\0<upstream model>``: ``gw:cd:until`` ("<until ms> <reason>") and
``gw:cd:fails`` ("<count> <window start ms> <window ms>"). Entries past their time are deleted when
the state is read; both hashes expire a day after their last failure.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import redis
import redis.asyncio as aioredis

from gateway.routing.cooldown_store import Cooling, Key, State, Store

TIMEOUT = 2.0
UNTIL, FAILS = "gw:cd:until", "gw:cd:fails"

_READ = """
local function read(now)
  local cooling, failing = {}, {}
  local entries = redis.call('HGETALL', KEYS[1])
  for i = 1, #entries, 2 do
    local untilms = tonumber(string.match(entries[i + 1], '^(%d+)'))
    if untilms and untilms > now then
      cooling[#cooling + 1] = entries[i]
      cooling[#cooling + 1] = entries[i + 1]
    else
      redis.call('HDEL', KEYS[1], entries[i])
    end
  end
  entries = redis.call('HGETALL', KEYS[2])
  for i = 1, #entries, 2 do
    local c, s, w = string.match(entries[i + 1], '^(%d+) (%d+) (%d+)$')
    if c and tonumber(s) + tonumber(w) > now then
      failing[#failing + 1] = entries[i]
    else
      redis.call('HDEL', KEYS[2], entries[i])
    end
  end
  return {cooling, failing}
end
"""

READ = _READ + "return read(tonumber(ARGV[1]))"

# ARGV: now, field, threshold, window, cooldown, at least (all ms but threshold), reason.
FAIL = _READ + """
local now, field = tonumber(ARGV[1]), ARGV[2]
local threshold, window, cooldown, least = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local count, start = 0, now
local counted = redis.call('HGET', KEYS[2], field)
if counted then
  local c, s, w = string.match(counted, '^(%d+) (%d+) (%d+)$')
  if c and tonumber(s) + tonumber(w) > now then count, start = tonumber(c), tonumber(s) end
end
count = count + 1
local current = redis.call('HGET', KEYS[1], field)
local current_until = current and tonumber(string.match(current, '^(%d+)')) or 0
if count >= threshold or current_until > now then
  local cool = math.max(cooldown, least, 1)
  redis.call('HDEL', KEYS[2], field)
  if now + cool > current_until then redis.call('HSET', KEYS[1], field, (now + cool) .. ' ' .. ARGV[7]) end
else
  redis.call('HSET', KEYS[2], field, count .. ' ' .. start .. ' ' .. window)
end
redis.call('PEXPIRE', KEYS[1], 86400000)
redis.call('PEXPIRE', KEYS[2], 86400000)
return read(now)
"""

RESET = _READ + """
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
return read(tonumber(ARGV[1]))
"""


def _ms(seconds: float) -> int:
    return max(0, int(seconds * 1000))


def _field(key: Key) -> str:
    return f"{key[0]}\0{key[1]}"


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _state(reply: list[Any]) -> State:
    cooling_pairs, failing = reply
    cooling: dict[Key, Cooling] = {}
    for i in range(0, len(cooling_pairs), 2):
        provider, _, model = _text(cooling_pairs[i]).partition("\0")
        until, _, reason = _text(cooling_pairs[i + 1]).partition(" ")
        cooling[(provider, model)] = Cooling(provider, model, int(until) / 1000, reason)
    keys = (_text(name).partition("\0") for name in failing)
    return State(cooling, frozenset((provider, model) for provider, _, model in keys))


class RedisCooldowns(Store):
    """One client per event loop (a worker has one), and a synchronous one for the admin."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Any, ...]] = weakref.WeakKeyDictionary()
        self._sync: tuple[Any, ...] | None = None

    @property
    def shared(self) -> bool:
        return True

    def _scripts(self) -> tuple[Any, ...]:
        loop = asyncio.get_running_loop()
        found = self._loops.get(loop)
        if found is None:
            client = aioredis.Redis.from_url(self.url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
            found = self._loops[loop] = (client, client.register_script(READ), client.register_script(FAIL),
                                         client.register_script(RESET))
        return found

    async def read(self, now: float) -> State:
        return _state(await self._scripts()[1](keys=[UNTIL, FAILS], args=[_ms(now)]))

    async def fail(self, key: Key, policy: tuple[int, float, float], now: float, at_least: float,
                   reason: str) -> State:
        threshold, window, seconds = policy
        args = [_ms(now), _field(key), threshold, _ms(window), _ms(seconds), _ms(at_least), reason]
        return _state(await self._scripts()[2](keys=[UNTIL, FAILS], args=args))

    async def reset(self, key: Key, now: float) -> State:
        return _state(await self._scripts()[3](keys=[UNTIL, FAILS], args=[_ms(now), _field(key)]))

    def _sync_scripts(self) -> tuple[Any, ...]:
        if self._sync is None:
            client = redis.Redis.from_url(self.url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
            self._sync = (client, client.register_script(READ))
        return self._sync

    def read_sync(self, now: float) -> State:
        return _state(self._sync_scripts()[1](keys=[UNTIL, FAILS], args=[_ms(now)]))

    def clear(self) -> None:
        self._sync_scripts()[0].delete(UNTIL, FAILS)
