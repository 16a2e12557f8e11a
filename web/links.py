"""Short-lived signed URLs for what a <video>, an <img> or a download link opens: they cannot
send an Authorization header, and a credential in a URL ends up in logs, history and Referer.

A link names the path, who it was made for and when it expires, under an HMAC of all three
with a key every worker derives from the audit's signing key. The route it opens still checks
that person as if they had called with their own credential (a revoked token, a withdrawn
review permission or a signed-out session closes the link too).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

# Long enough to start a player or a download; a page asks for a fresh link when one lapses
# (a long playback re-signs and seeks back to where it was).
LINK_TTL_S = 15 * 60
PARAMS = ("exp", "who", "sig")


@dataclass(frozen=True)
class LinkHolder:
    """Who a valid link was made for: an actor of the audit (`participant:<id>` or staff)."""

    who: str


class BadLink(Exception):
    """A link that is malformed, altered or expired; the message says which."""


class MediaLinks:
    def __init__(self, key: bytes, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._now = clock

    def _mac(self, path: str, who: str, expires: int) -> str:
        message = f"{path}\n{who}\n{expires}".encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def sign(self, path: str, who: str, ttl_s: int = LINK_TTL_S) -> tuple[str, int]:
        """`path` (no query) made openable by `who` until the returned Unix time."""
        expires = int(self._now()) + ttl_s
        query = urlencode({"exp": expires, "who": who, "sig": self._mac(path, who, expires)})
        return f"{path}?{query}", expires

    def check(self, path: str, query: dict[str, str]) -> LinkHolder | None:
        """Who the link in `query` was made for; None when the URL carries no link."""
        if "sig" not in query:
            return None
        missing = [p for p in PARAMS if not query.get(p)]
        if missing:
            raise BadLink(f"the link lacks {', '.join(missing)}")
        exp, who, sig = query["exp"], query["who"], query["sig"]
        # ASCII only: isdigit() also takes "²" (which int() refuses) and other scripts' digits.
        if not (exp.isascii() and exp.isdigit()) or len(exp) > 12:
            raise BadLink("the link's expiry is not a time")
        if not hmac.compare_digest(sig.encode("utf-8", "surrogatepass"),
                                   self._mac(path, who, int(exp)).encode()):
            raise BadLink("the link's signature does not match (altered, or for another path)")
        if int(exp) <= self._now():
            raise BadLink("the link has expired; ask the page for a new one")
        return LinkHolder(who)
