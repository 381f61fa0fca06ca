"""Tokens: personal API tokens (how scripts and the CLI act as a person without a password),
and the same kind of secret under another prefix for devices (``access.devices``).

A token is ``fwt_`` and 43 URL-safe characters (256 random bits). Only its SHA-256 digest is
stored: with that much entropy a fast hash cannot be reversed, and a lookup stays one index
probe. The first twelve characters are kept as they are, so people can tell tokens apart.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final, NamedTuple

__all__ = ["PREFIX", "NewToken", "digest", "new_token"]

PREFIX: Final = "fwt_"
_SHOWN: Final = 12


class NewToken(NamedTuple):
    """A token as made: the secret (shown once), what is shown later, what is stored."""

    secret: str
    prefix: str
    digest: str


def digest(secret: str) -> str:
    """The stored form of ``secret``."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token(prefix: str = PREFIX) -> NewToken:
    """A fresh token starting with ``prefix`` (a personal one by default)."""
    secret = prefix + secrets.token_urlsafe(32)
    return NewToken(secret, secret[:_SHOWN], digest(secret))


def looks_like_token(text: str, prefix: str = PREFIX) -> bool:
    """Whether ``text`` has a token's shape (checked before any lookup)."""
    return text.startswith(prefix) and 20 <= len(text) <= 100 and text.isascii()
