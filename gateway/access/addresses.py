"""The client address that limits per client address count by.

It is the connection's peer as the ASGI server reports it (``scope["client"]``; Django's
``REMOTE_ADDR`` for DRF views, taken from the same place). Behind a proxy, uvicorn puts the
client's own address there from ``X-Forwarded-For`` only when the connection comes from an
address in ``FORWARDED_ALLOW_IPS`` (default: this machine); the gateway reads no forwarding header
itself, so a client cannot choose the address it is counted as.
"""

from __future__ import annotations

import ipaddress
from typing import Any

UNKNOWN = "unknown"  # no address (e.g. a Unix socket) or not an IP address: all such clients count as one
IPV6_NETWORK_BITS = 64


def address_of(request: Any) -> str | None:
    """The peer address of a hot-path request (``scope["client"]``) or of a DRF/Django one (``REMOTE_ADDR``)."""
    meta = getattr(request, "META", None)
    if meta is not None:
        return meta.get("REMOTE_ADDR")
    client = request.scope.get("client")
    return client[0] if client else None


def client_key(address: str | None) -> str:
    """What a per-address limit counts by: an IPv4 address as it is (an IPv4-mapped IPv6 one too); an
    IPv6 address by its /64 network, the block one subscriber is given (counted per address, one
    client would have 2**64 separate limits); ``unknown`` for anything else."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return UNKNOWN
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_NETWORK_BITS), strict=False))
    return str(ip)
