"""People in PostgreSQL: users, their API tokens, sign-in throttling, the audit trail.

Rows in, rows out (dicts keyed by column), on the caller's psycopg connection and in its
transaction, so an action and its audit row commit together. What a role may do is
``access``'s business.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from stores.errors import StoreError

__all__ = [
    "Row",
    "UserTakenError",
    "active_token",
    "add_token",
    "add_user",
    "audit",
    "clear_failures",
    "count_active_admins",
    "delete_audit_before",
    "list_audit",
    "list_tokens",
    "list_users",
    "note_failure",
    "revoke_token",
    "signed_in",
    "throttle_of",
    "update_user",
    "user_by_email",
    "user_by_id",
    "user_by_name",
]

Row = dict[str, Any]
_PUBLIC_USER = (
    "id, username, email, role, is_active, created_at, updated_at, last_sign_in_at, "
    "password_changed_at"
)


class UserTakenError(StoreError):
    """A user with that username or email exists already."""


def _rows(
    conn: psycopg.Connection[Any], query: str, params: Sequence[object] | Mapping[str, object]
) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return list(cur.fetchall()) if cur.description else []


def _one(
    conn: psycopg.Connection[Any], query: str, params: Sequence[object] | Mapping[str, object]
) -> Row | None:
    rows = _rows(conn, query, params)
    return rows[0] if rows else None


# --- users ---------------------------------------------------------------------------------


# The columns are a constant, the values parameters.
_INSERT_USER = (
    "INSERT INTO users (id, username, email, password_hash, role, password_changed_at) "
    "VALUES (%(id)s, %(username)s, %(email)s, %(password_hash)s, %(role)s, now()) "
    "RETURNING " + _PUBLIC_USER
)


def add_user(conn: psycopg.Connection[Any], user: Mapping[str, object]) -> Row:
    """Insert a user (id, username, email, password_hash, role); returns its public row.

    Raises:
        UserTakenError: the username or email is taken.
    """
    try:
        with conn.transaction():
            row = _one(conn, _INSERT_USER, user)
    except psycopg.errors.UniqueViolation as exc:
        raise UserTakenError(f"a user named {user['username']} or with that email exists") from exc
    assert row is not None
    return row


def user_by_name(conn: psycopg.Connection[Any], username: str) -> Row | None:
    """A user by username (case-insensitive), with the password hash."""
    return _one(conn, "SELECT * FROM users WHERE lower(username) = lower(%s)", (username,))


def user_by_email(conn: psycopg.Connection[Any], email: str) -> Row | None:
    """A user by email (case-insensitive), with the password hash."""
    return _one(conn, "SELECT * FROM users WHERE lower(email) = lower(%s)", (email,))


def user_by_id(conn: psycopg.Connection[Any], user_id: UUID) -> Row | None:
    """A user's public row."""
    query = f"SELECT {_PUBLIC_USER} FROM users WHERE id = %s"  # noqa: S608 - constant columns
    return _one(conn, query, (user_id,))


def list_users(conn: psycopg.Connection[Any]) -> list[Row]:
    """Every user's public row, by name."""
    query = f"SELECT {_PUBLIC_USER} FROM users ORDER BY username"  # noqa: S608 - constant
    return _rows(conn, query, ())


def count_active_admins(conn: psycopg.Connection[Any]) -> int:
    """How many active admins there are."""
    row = _one(conn, "SELECT count(*) AS n FROM users WHERE role = 'admin' AND is_active", ())
    return int(row["n"]) if row else 0


_USER_CHANGES = frozenset({"role", "is_active", "password_hash", "email"})


def update_user(conn: psycopg.Connection[Any], user_id: UUID, changes: Mapping[str, object]) -> Row:
    """Change a user's role, activity, email or password hash; returns its public row.

    Raises:
        StoreError: an unknown column, or no such user.
    """
    unknown = set(changes) - _USER_CHANGES
    if unknown or not changes:
        raise StoreError(f"cannot change {sorted(unknown) or 'nothing'} of a user")
    sets = ", ".join(f"{name} = %({name})s" for name in sorted(changes))
    if "password_hash" in changes:
        sets += ", password_changed_at = now()"
    row = _one(
        conn,
        # Column names come from _USER_CHANGES (checked above), values are parameters.
        f"UPDATE users SET {sets} WHERE id = %(user_id)s RETURNING {_PUBLIC_USER}",  # noqa: S608
        {**changes, "user_id": user_id},
    )
    if row is None:
        raise StoreError(f"no user {user_id}")
    return row


def signed_in(conn: psycopg.Connection[Any], user_id: UUID, now: datetime) -> None:
    """Record a successful sign-in."""
    _rows(conn, "UPDATE users SET last_sign_in_at = %s WHERE id = %s", (now, user_id))


# --- tokens --------------------------------------------------------------------------------


def add_token(
    conn: psycopg.Connection[Any],
    user_id: UUID,
    name: str,
    *,
    prefix: str,
    token_hash: str,
    expires_at: datetime | None,
) -> Row:
    """Store a token's digest; returns its row (no digest).

    Raises:
        UserTakenError: the user has a token of that name already.
    """
    try:
        with conn.transaction():
            row = _one(
                conn,
                "INSERT INTO api_tokens (user_id, name, prefix, token_hash, expires_at) "
                "VALUES (%s, %s, %s, %s, %s) "
                "RETURNING id, user_id, name, prefix, created_at, expires_at",
                (user_id, name, prefix, token_hash, expires_at),
            )
    except psycopg.errors.UniqueViolation as exc:
        raise UserTakenError(f"a token named {name} exists already") from exc
    assert row is not None
    return row


def active_token(conn: psycopg.Connection[Any], token_hash: str, now: datetime) -> Row | None:
    """The user behind a live token (not revoked, not expired), marking it used."""
    return _one(
        conn,
        "UPDATE api_tokens t SET last_used_at = %(now)s FROM users u "
        "WHERE t.token_hash = %(hash)s AND t.user_id = u.id AND t.revoked_at IS NULL "
        "AND (t.expires_at IS NULL OR t.expires_at > %(now)s) "
        "RETURNING u.id, u.username, u.role, u.is_active, t.name AS token_name",
        {"hash": token_hash, "now": now},
    )


def list_tokens(conn: psycopg.Connection[Any], user_id: UUID | None = None) -> list[Row]:
    """Tokens (never their digests), newest first, of one user or all."""
    return _rows(
        conn,
        "SELECT t.id, u.username, t.name, t.prefix, t.created_at, t.expires_at, "
        "t.last_used_at, t.revoked_at FROM api_tokens t JOIN users u ON u.id = t.user_id "
        "WHERE %(user)s::uuid IS NULL OR t.user_id = %(user)s ORDER BY t.created_at DESC",
        {"user": user_id},
    )


def revoke_token(conn: psycopg.Connection[Any], user_id: UUID, name: str, now: datetime) -> bool:
    """Revoke a user's token by name; False when there is no live one."""
    rows = _rows(
        conn,
        "UPDATE api_tokens SET revoked_at = %s WHERE user_id = %s AND name = %s "
        "AND revoked_at IS NULL RETURNING id",
        (now, user_id, name),
    )
    return bool(rows)


# --- throttling ----------------------------------------------------------------------------


def throttle_of(conn: psycopg.Connection[Any], username: str) -> Row | None:
    """A name's failures, delay and lock, locked for this transaction (one attempt at a time)."""
    return _one(
        conn,
        "SELECT * FROM sign_in_throttle WHERE username = %s FOR UPDATE",
        (username.casefold(),),
    )


def note_failure(
    conn: psycopg.Connection[Any],
    username: str,
    *,
    failures: int,
    now: datetime,
    retry_at: datetime | None,
    locked_until: datetime | None,
) -> None:
    """Store a name's throttle after a failure."""
    _rows(
        conn,
        "INSERT INTO sign_in_throttle (username, failures, last_failure_at, retry_at, "
        "locked_until) VALUES (%(name)s, %(failures)s, %(now)s, %(retry)s, %(locked)s) "
        "ON CONFLICT (username) DO UPDATE SET failures = EXCLUDED.failures, "
        "last_failure_at = EXCLUDED.last_failure_at, retry_at = EXCLUDED.retry_at, "
        "locked_until = EXCLUDED.locked_until",
        {
            "name": username.casefold(),
            "failures": failures,
            "now": now,
            "retry": retry_at,
            "locked": locked_until,
        },
    )


def clear_failures(conn: psycopg.Connection[Any], username: str) -> None:
    """Forget a name's failures (a successful sign-in, or an admin's unlock)."""
    _rows(conn, "DELETE FROM sign_in_throttle WHERE username = %s", (username.casefold(),))


# --- the audit trail -----------------------------------------------------------------------


def audit(conn: psycopg.Connection[Any], entry: Mapping[str, object]) -> int:
    """Append an audit row (level, category, message, username, user_id, device, source,
    details); returns its id."""
    row = _one(
        conn,
        "INSERT INTO system_logs (level, category, message, username, user_id, device, "
        "source, details) VALUES (%(level)s, %(category)s, %(message)s, %(username)s, "
        "%(user_id)s, %(device)s, %(source)s, %(details)s) RETURNING id",
        {**entry, "details": Jsonb(entry.get("details") or {})},
    )
    assert row is not None
    return int(row["id"])


def list_audit(
    conn: psycopg.Connection[Any],
    *,
    start: datetime | None = None,
    stop: datetime | None = None,
    category: str | None = None,
    level: str | None = None,
    username: str | None = None,
    device: str | None = None,
    limit: int = 1000,
) -> list[Row]:
    """Audit rows, newest first, matching every filter given."""
    return _rows(
        conn,
        "SELECT id, timestamp, level, category, message, username, device, source, details "
        "FROM system_logs WHERE (%(start)s::timestamptz IS NULL OR timestamp >= %(start)s) "
        "AND (%(stop)s::timestamptz IS NULL OR timestamp < %(stop)s) "
        "AND (%(category)s::text IS NULL OR category = %(category)s) "
        "AND (%(level)s::text IS NULL OR level = %(level)s) "
        "AND (%(username)s::text IS NULL OR username = %(username)s) "
        "AND (%(device)s::text IS NULL OR device = %(device)s) "
        "ORDER BY timestamp DESC, id DESC LIMIT %(limit)s",
        {
            "start": start,
            "stop": stop,
            "category": category,
            "level": level,
            "username": username,
            "device": device,
            "limit": limit,
        },
    )


def delete_audit_before(conn: psycopg.Connection[Any], cutoff: datetime) -> int:
    """Delete audit rows older than ``cutoff``; returns how many."""
    with conn.cursor() as cur:
        cur.execute("DELETE FROM system_logs WHERE timestamp < %s", (cutoff,))
        return cur.rowcount
