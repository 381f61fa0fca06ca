"""Password hashes: argon2id (memory-hard), its parameters and salt kept inside each hash.

A hash made with weaker parameters than today's is re-made at the next successful sign-in
(:func:`needs_rehash`), so raising the cost needs no migration.
"""

from __future__ import annotations

from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from access.errors import UserError

__all__ = ["MIN_LENGTH", "check_strength", "hash_password", "needs_rehash", "verify_password"]

MIN_LENGTH: Final = 10
"""Shortest password accepted."""
_MAX_LENGTH: Final = 1024  # long enough for any passphrase; bounds the hashing work

# argon2-cffi's defaults follow RFC 9106's second recommendation (64 MiB, 3 passes).
_HASHER: Final = PasswordHasher()
# What a failed lookup verifies against, so an unknown name costs as much as a wrong password.
_DUMMY: Final = _HASHER.hash("no such user, no such password")


def check_strength(password: str, *, username: str) -> None:
    """Raise UserError for a password too short, too long, or the username itself."""
    if len(password) < MIN_LENGTH:
        raise UserError(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > _MAX_LENGTH:
        raise UserError(f"a password has at most {_MAX_LENGTH} characters")
    if password.casefold() == username.casefold():
        raise UserError("a password cannot be the username")


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (an encoded string with its salt)."""
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``; None (no such user) costs the same and fails."""
    if len(password) > _MAX_LENGTH:
        return False
    try:
        return _HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` was made with other parameters than today's."""
    return _HASHER.check_needs_rehash(stored)
