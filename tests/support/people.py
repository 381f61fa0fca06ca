"""People for tests that act: an admin, two operators and a viewer, each with a token."""

from __future__ import annotations

from typing import Any, Final

import psycopg

from access import UserRole
from access.signin import sign_in
from access.users import add_user, create_token

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


def add_people(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """Add :data:`ROLES` (ada first, as the first admin); returns each one's API token."""
    add_user(
        conn, None, username="ada", email="ada@example.com", role=UserRole.ADMIN,
        password=password_of("ada"),
    )  # fmt: skip
    ada = sign_in(conn, "ada", password_of("ada"), source="test")
    tokens = {"ada": create_token(conn, ada, "tests")}
    for name, role in ROLES.items():
        if name == "ada":
            continue
        add_user(
            conn, ada, username=name, email=f"{name}@example.com", role=role,
            password=password_of(name),
        )  # fmt: skip
        tokens[name] = create_token(
            conn, sign_in(conn, name, password_of(name), source="test"), "tests"
        )
    return tokens
