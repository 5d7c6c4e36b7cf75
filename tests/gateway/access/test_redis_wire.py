"""The limit store's lean Redis connection: replies in order, the script loaded again when Redis lost
it, redis-py's errors for a server that is away, hangs or drops the connection, and the URL's
password and database honoured. The store on top of it sends a finished request's settlement
with the next request's take: one script call, not two."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis
from redis.connection import parse_url

from gateway.access import redis_store, redis_wire
from gateway.access.limits import Counter, Limits
from gateway.access.redis_store import RedisStore
from gateway.access.redis_wire import RedisWire
from tests.fakes.tcp_proxy import TcpProxy
from tests.gateway.access.conftest import clean_redis

NOW = 1_900_000_000.0


def other_db(url: str) -> str:
    """The same server, database 15 (what the wire selects must be where the keys land)."""
    options = parse_url(url)
    return f"redis://{options.get('host', 'localhost')}:{options.get('port', 6379)}/15"


@pytest.fixture
def proxy(redis_url: str) -> Iterator[TcpProxy]:
    """A TCP proxy in front of the test Redis, to hang or cut."""
    options = parse_url(redis_url)
    proxy = TcpProxy(options.get("host", "localhost"), options.get("port", 6379)).start()
    yield proxy
    proxy.stop()


def test_pipelined_calls_get_their_own_replies_in_order(redis_url: str) -> None:
    async def work() -> list[object]:
        wire = RedisWire(redis_url, 2.0)
        try:
            return await asyncio.gather(*(wire.call("ECHO", f"reply {i}") for i in range(50)))
        finally:
            wire.close()

    assert asyncio.run(work()) == [f"reply {i}".encode() for i in range(50)]


def test_the_urls_database_is_selected(redis_url: str) -> None:
    url = other_db(redis_url)
    plain = redis.Redis.from_url(url)
    plain.delete("gw:lim:wire:db")

    async def work() -> None:
        wire = RedisWire(url, 2.0)
        try:
            await wire.call("SET", "gw:lim:wire:db", "here")
        finally:
            wire.close()

    asyncio.run(work())
    assert plain.get("gw:lim:wire:db") == b"here"
    plain.delete("gw:lim:wire:db")
    plain.close()


def test_an_error_reply_raises_and_the_connection_goes_on(redis_url: str) -> None:
    async def work() -> None:
        wire = RedisWire(redis_url, 2.0)
        try:
            with pytest.raises(redis.ResponseError, match="unknown command"):
                await wire.call("NO-SUCH-COMMAND")
            assert await wire.call("PING") == b"PONG"
        finally:
            wire.close()

    asyncio.run(work())


def test_a_script_redis_no_longer_has_is_sent_again(redis_url: str) -> None:
    script = "return ARGV[1] .. '!'"

    async def work() -> tuple[object, object]:
        wire = RedisWire(redis_url, 2.0)
        try:
            first = await wire.run_script(script, [], ["once"])
            await wire.call("SCRIPT", "FLUSH")  # (a restarted Redis has no scripts either)
            return first, await wire.run_script(script, [], ["again"])
        finally:
            wire.close()

    assert asyncio.run(work()) == (b"once!", b"again!")


def test_a_server_that_is_away_is_a_connection_error() -> None:
    async def work() -> None:
        wire = RedisWire("redis://127.0.0.1:1/0", 2.0)
        with pytest.raises(redis.ConnectionError):
            await wire.call("PING")

    asyncio.run(work())


def test_a_hung_server_is_a_timeout_then_the_next_call_reconnects(proxy: TcpProxy) -> None:
    async def work() -> None:
        wire = RedisWire(f"redis://127.0.0.1:{proxy.port}/0", 0.3)
        try:
            assert await wire.call("PING") == b"PONG"
            proxy.cut("hang")
            started = time.monotonic()
            with pytest.raises(redis.TimeoutError):
                await wire.call("PING")
            assert time.monotonic() - started < 2
            proxy.restore()
            assert await wire.call("PING") == b"PONG"  # a new connection: the old one may hold a late reply
        finally:
            wire.close()

    asyncio.run(work())


def test_a_dropped_connection_fails_its_calls_and_the_next_one_reconnects(proxy: TcpProxy) -> None:
    async def work() -> None:
        wire = RedisWire(f"redis://127.0.0.1:{proxy.port}/0", 2.0)
        try:
            assert await wire.call("PING") == b"PONG"
            waiting = asyncio.ensure_future(wire.call("BLPOP", "gw:lim:wire:never", "5"))
            await asyncio.sleep(0.1)
            proxy.cut("refuse")
            with pytest.raises(redis.ConnectionError):
                await waiting
            proxy.restore()
            assert await wire.call("PING") == b"PONG"
        finally:
            wire.close()

    asyncio.run(work())


def test_a_settlement_travels_with_the_next_take(redis_url: str, transactional_db: None) -> None:
    clean_redis(redis_url)
    store = RedisStore(redis_url)
    holder = Limits("token", 1, "t")
    tokens = Counter("gw:lim:tok:1:tpm:wire", "tpm", 1000, 300, holder, NOW + 60, NOW + 120)
    calls: list[int] = []

    async def work() -> list[int]:
        await store.take([tokens], "first", NOW)
        wire = store._state().wire
        original = wire.run_script

        async def counted(script: str, keys: list[str], args: list[str]) -> object:
            calls.append(len(keys))
            return await original(script, keys, args)

        wire.run_script = counted  # type: ignore[method-assign]
        settled = asyncio.ensure_future(store.settle([(tokens, -200)], "first"))
        await asyncio.sleep(0)  # the settlement waits for a take to go with...
        second = await store.take([tokens], "second", NOW)
        await settled
        await store.close()
        return second.values

    try:
        # ...and the take sees it: 300 taken, 200 given back, before this take's check
        assert asyncio.run(work()) == [100]
    finally:
        clean_redis(redis_url)
    assert calls == [2]  # one call: the settled counter and the taken one


def test_a_settlement_alone_is_sent_within_the_delay(redis_url: str, transactional_db: None) -> None:
    clean_redis(redis_url)
    store = RedisStore(redis_url)
    holder = Limits("token", 1, "t")
    tokens = Counter("gw:lim:tok:1:tpm:alone", "tpm", 1000, 300, holder, NOW + 60, NOW + 120)

    async def work() -> tuple[list[int], float]:
        await store.take([tokens], "first", NOW)
        started = time.monotonic()
        await store.settle([(tokens, -250)], "first")
        waited = time.monotonic() - started
        values = await store.peek([tokens], NOW)
        await store.close()
        return values, waited

    try:
        values, waited = asyncio.run(work())
    finally:
        clean_redis(redis_url)
    assert values == [50]
    assert waited < redis_store.SETTLE_DELAY + 1.0


def test_the_urls_user_and_password_are_sent(redis_url: str) -> None:
    options = parse_url(redis_url)
    admin = redis.Redis.from_url(redis_url)
    admin.acl_setuser("gw-wire-test", enabled=True, passwords=["+s3cret/pw"], commands=["+@all"], keys=["*"])
    base = f"{options.get('host', 'localhost')}:{options.get('port', 6379)}"

    async def work(url: str) -> object:
        wire = RedisWire(url, 2.0)
        try:
            return await wire.call("ACL", "WHOAMI")
        finally:
            wire.close()

    try:
        assert asyncio.run(work(f"redis://gw-wire-test:s3cret%2Fpw@{base}/0")) == b"gw-wire-test"
        with pytest.raises(redis.AuthenticationError, match="WRONGPASS"):
            asyncio.run(work(f"redis://gw-wire-test:wrong@{base}/0"))
    finally:
        admin.acl_deluser("gw-wire-test")
        admin.close()


def test_a_connection_closed_before_it_was_told_is_a_connection_error() -> None:
    class ClosedTransport:  # uvloop's, once the server closed it and before connection_lost has run
        def write(self, data: bytes) -> None:
            raise RuntimeError("unable to perform operation on <TCPTransport closed=True>; the handler is closed")

        def abort(self) -> None:
            pass

    async def work() -> None:
        wire = RedisWire("redis://127.0.0.1:1/0", 2.0)
        protocol = redis_wire._Protocol()
        protocol.connection_made(ClosedTransport())  # type: ignore[arg-type]
        wire._protocol = protocol
        with pytest.raises(redis.ConnectionError, match="lost"):
            await wire.call("PING")
        assert protocol.lost is not None  # the next call opens a new connection

    asyncio.run(work())
