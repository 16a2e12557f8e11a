"""Who is at the other end of a request: its address and whether it came over https, read
through the court's own reverse proxies (`trusted_proxies`) and never through anyone else's
say-so (a client can send any X-Forwarded-For it likes)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from aiohttp import web

from web.keys import SETTINGS

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=16)
def _networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _trusted(address: str | None, networks: tuple[Network, ...]) -> bool:
    if not address or not networks:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in n for n in networks)


def _through_proxies(request: web.Request) -> tuple[str, bool]:
    """The client's address and whether the request reached a trusted proxy over https."""
    networks = _networks(tuple(request.app[SETTINGS].trusted_proxies))
    address = request.remote or "unknown"
    if not _trusted(address, networks):
        return address, False
    # Rightmost first: each trusted proxy appended the address it was reached from.
    hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", []))
            .split(",") if h.strip()]
    for hop in reversed(hops):
        address = hop
        if not _trusted(hop, networks):
            break
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return address, proto == "https"


def client_address(request: web.Request) -> str:
    return _through_proxies(request)[0]


def over_https(request: web.Request) -> bool:
    """Whether the browser reached the court over https (here, or at a trusted proxy)."""
    return request.secure or _through_proxies(request)[1]
