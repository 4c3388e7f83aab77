"""Random tokens mailed or set in cookies; only their hash is stored."""

from __future__ import annotations

import hashlib
import secrets


def new_token() -> tuple[str, str]:
    """A fresh token and the hash to store for it."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    # The tokens carry 256 random bits, so a plain SHA-256 is enough: no KDF needed.
    return hashlib.sha256(token.encode()).hexdigest()
