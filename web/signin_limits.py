"""Failed staff sign-ins per client address (an IPv6 client's /64): a person retyping gets
through, a guesser does not."""

from __future__ import annotations

import ipaddress
from collections import OrderedDict

from signaling.limits import TokenBucket

# Wrong tokens from one address: 5 at once, then one a minute (a person retyping gets through,
# a guesser does not).
SIGN_IN_BURST = 5
SIGN_IN_PER_S = 1 / 60
MAX_ADDRESSES = 10_000


def guesser(address: str) -> str:
    """Whom an address stands for: an IPv4 address (an IPv4-mapped IPv6 one too), or an IPv6
    address's /64, the least a host is given (it may send from any address in it)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class SignInLimits:
    """Failed sign-ins per client address, in this process."""

    def __init__(self) -> None:
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def _bucket(self, address: str) -> TokenBucket:
        bucket = self._buckets.pop(address, None) or TokenBucket(SIGN_IN_PER_S, SIGN_IN_BURST)
        self._buckets[address] = bucket
        while len(self._buckets) > MAX_ADDRESSES:
            self._buckets.popitem(last=False)
        return bucket

    def blocked(self, address: str) -> bool:
        bucket = self._buckets.get(guesser(address))
        return bucket is not None and not bucket.ready()

    def failed(self, address: str) -> None:
        self._bucket(guesser(address)).allow()
