"""Bearer secrets (join tokens, device keys): unguessable, stored only as SHA-256."""

from __future__ import annotations

import hashlib
import secrets

SECRET_BYTES = 32


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def digest(secret: str) -> str:
    # Secrets carry 256 bits of entropy, so a plain hash is enough; no slow KDF is needed.
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()
