"""The audit trail: every sign-in, acknowledgement, command and change, and every refusal.

Rows are written with the action, in its transaction (:func:`acting`), so a change is never
without its record; a refusal is recorded on its own, since the action never happens.
Nothing secret reaches a row: details whose key names a password, token, secret or hash are
dropped before writing, whoever passed them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg

from access.errors import ForbiddenError
from access.identity import Identity
from access.roles import Permission, UserRole, may
from stores.postgres import people_store
from stores.postgres.schema import LogLevel

__all__ = ["Acting", "LogLevel", "acting", "record", "require"]

_SECRET_WORDS: Final = ("password", "token", "secret", "hash")


def _scrub(details: Mapping[str, object]) -> dict[str, object]:
    clean: dict[str, object] = {}
    for key, value in details.items():
        if any(word in key.casefold() for word in _SECRET_WORDS):
            continue
        clean[key] = _scrub(value) if isinstance(value, Mapping) else value
    return clean


def record(
    conn: psycopg.Connection[Any],
    *,
    category: str,
    message: str,
    who: Identity | None = None,
    username: str | None = None,
    level: LogLevel = LogLevel.INFO,
    device: str | None = None,
    source: str | None = None,
    details: Mapping[str, object] | None = None,
) -> int:
    """Append one audit row in ``conn``'s transaction; returns its id."""
    return people_store.audit(
        conn,
        {
            "level": level.value,
            "category": category,
            "message": message,
            "username": (who.username if who else username or None),
            "user_id": who.user_id if who else None,
            "device": device,
            "source": source or (who.source if who else None),
            "details": _scrub(details or {}),
        },
    )


def _least_role(permission: Permission) -> UserRole:
    return next(role for role in (UserRole.OPERATOR, UserRole.ADMIN) if may(role, permission))


def require(
    conn: psycopg.Connection[Any],
    who: Identity,
    permission: Permission,
    what: str,
    *,
    category: str,
    device: str | None = None,
) -> None:
    """Return if ``who`` may; else record the refusal (committed) and raise ForbiddenError.

    Call it outside any transaction of ``conn``: the refusal row must outlive the action.
    """
    if who.may(permission):
        return
    with conn.transaction():
        record(
            conn,
            category=category,
            message=f"refused: {what}",
            who=who,
            level=LogLevel.WARNING,
            device=device,
            details={"needs": permission.value, "role": who.role.value},
        )
    raise ForbiddenError(
        f"{who.username} is {_article(who.role)} and may not {what}: "
        f"that needs the {_least_role(permission)} role"
    )


def _article(role: UserRole) -> str:
    return f"an {role}" if role.value[0] in "aeiou" else f"a {role}"


@dataclass(slots=True)
class Acting:
    """What the body of :func:`acting` adds to its audit row (a device, details, message)."""

    message: str
    device: str | None = None
    details: dict[str, object] = field(default_factory=dict)


@contextmanager
def acting(
    conn: psycopg.Connection[Any],
    who: Identity,
    permission: Permission,
    what: str,
    *,
    category: str,
    device: str | None = None,
    details: Mapping[str, object] | None = None,
) -> Iterator[Acting]:
    """Check ``who`` may (refusals recorded), then run the body and its audit row in one
    transaction of ``conn``; the body may amend the row through the yielded :class:`Acting`.

    Raises:
        ForbiddenError: ``who``'s role does not grant ``permission``.
    """
    require(conn, who, permission, what, category=category, device=device)
    note = Acting(message=what, device=device, details=dict(details or {}))
    with conn.transaction():
        yield note
        record(
            conn,
            category=category,
            message=note.message,
            who=who,
            device=note.device,
            details=note.details,
        )
