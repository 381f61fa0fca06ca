"""People for tests that act: an admin, three operators and a viewer, each with a token.

They are written straight into the store with hashes made once per test process: argon2id
costs a noticeable fraction of a second a hash, by design, and dozens of tests need these
people. How people are added through ``access.users`` is tested on its own.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any, Final

import psycopg

from access import UserRole
from access.passwords import hash_password
from access.tokens import new_token
from stores.postgres import people_store

ROLES: Final = {
    "ada": UserRole.ADMIN,
    "ana": UserRole.OPERATOR,
    "bo": UserRole.OPERATOR,
    "cy": UserRole.OPERATOR,
    "vic": UserRole.VIEWER,
}


def password_of(username: str) -> str:
    """The test password of ``username``."""
    return f"{username}-test-passphrase"


@functools.cache
def _hash(username: str) -> str:
    return hash_password(password_of(username))


def add_people(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """Add :data:`ROLES` with their passwords; returns each one's API token."""
    tokens = {}
    for name, role in ROLES.items():
        row = people_store.add_user(
            conn,
            {
                "id": uuid.uuid4(),
                "username": name,
                "email": f"{name}@example.com",
                "role": role.value,
                "password_hash": _hash(name),
            },
        )
        token = new_token()
        people_store.add_token(
            conn, row["id"], "tests", prefix=token.prefix, token_hash=token.digest,
            expires_at=None,
        )  # fmt: skip
        tokens[name] = token.secret
    return tokens
