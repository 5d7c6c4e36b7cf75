"""The only module that talks to upstream providers.

One pooled aiohttp client per worker event loop, with keep-alive connections sized for
thousands of concurrent streams. aiohttp rather than httpx: in a bare ASGI app on this machine
(2 workers, c=64) a call through aiohttp's client served ~7,900 requests/s, httpx over an aiohttp
transport ~3,350 and httpx's own pool ~700 (see bench/ and the performance issue's note).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import aiohttp

from gateway.conf import gateway_settings
from providers.base import UpstreamRequest


class UpstreamUnavailable(Exception):
    """The upstream could not be reached or did not answer in time."""

    def __init__(self, message: str, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


class UpstreamResponse:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except TimeoutError as exc:
            raise UpstreamUnavailable("The upstream stopped answering (read timeout).", timeout=True) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"The upstream connection failed: {type(exc).__name__}.") from exc
        finally:
            self._response.release()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives."""
        try:
            async for data in self._response.content.iter_any():
                yield data
        except TimeoutError as exc:
            raise UpstreamUnavailable("The upstream stopped sending (read timeout).", timeout=True) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"The upstream connection broke: {type(exc).__name__}.") from exc

    def close(self) -> None:
        self._response.release()


class UpstreamClient:
    def __init__(self) -> None:
        config = gateway_settings
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=config.UPSTREAM_MAX_CONNECTIONS,
                limit_per_host=config.UPSTREAM_MAX_PER_HOST,
                keepalive_timeout=config.UPSTREAM_KEEPALIVE_SECONDS,
                ttl_dns_cache=300,
            ),
            timeout=aiohttp.ClientTimeout(total=None),
            skip_auto_headers=("User-Agent",),
        )

    async def send(self, request: UpstreamRequest, connect_timeout: float, read_timeout: float) -> UpstreamResponse:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=read_timeout)
        try:
            response = await self._session.request(
                request.method, request.url, headers=request.headers, data=request.body, timeout=timeout
            )
        except TimeoutError as exc:
            raise UpstreamUnavailable("The upstream did not answer in time.", timeout=True) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"Could not reach the upstream: {type(exc).__name__}.") from exc
        return UpstreamResponse(response)

    async def close(self) -> None:
        await self._session.close()


_clients: dict[asyncio.AbstractEventLoop, UpstreamClient] = {}


def client() -> UpstreamClient:
    """This event loop's shared client (a worker has one loop; tests may run several)."""
    loop = asyncio.get_running_loop()
    found = _clients.get(loop)
    if found is None:
        found = _clients[loop] = UpstreamClient()
    return found


async def close_client() -> None:
    found = _clients.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.close()
