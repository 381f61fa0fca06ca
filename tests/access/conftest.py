"""Fixtures of the access tests: a migrated database and people in it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from access import Identity, UserRole
from access.signin import sign_in
from access.users import add_user
from fleetwatch.settings import PostgresSettings
from stores.postgres.migrate import upgrade

PASSWORDS = {
    "ada": "ada-admin-passphrase",
    "oscar": "oscar-operator-passphrase",
    "vera": "vera-viewer-passphrase",
}
ROLES = {"ada": UserRole.ADMIN, "oscar": UserRole.OPERATOR, "vera": UserRole.VIEWER}


@pytest.fixture
def conn(pg_settings: PostgresSettings) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to a fresh, migrated database."""
    upgrade(pg_settings)
    with psycopg.connect(str(pg_settings.database_url), autocommit=True) as connection:
        yield connection


def add_people(conn: psycopg.Connection[Any]) -> dict[str, Identity]:
    """An admin (made as the first one), an operator and a viewer, signed in."""
    add_user(
        conn, None, username="ada", email="ada@example.com", role=UserRole.ADMIN,
        password=PASSWORDS["ada"],
    )  # fmt: skip
    ada = sign_in(conn, "ada", PASSWORDS["ada"], source="test")
    for name in ("oscar", "vera"):
        add_user(
            conn, ada, username=name, email=f"{name}@example.com", role=ROLES[name],
            password=PASSWORDS[name],
        )  # fmt: skip
    return {name: sign_in(conn, name, PASSWORDS[name], source="test") for name in PASSWORDS}


@pytest.fixture
def people(conn: psycopg.Connection[Any]) -> dict[str, Identity]:
    """ada (admin), oscar (operator) and vera (viewer), each signed in."""
    return add_people(conn)
