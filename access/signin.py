"""Signing in: a name and password (throttled), or a personal API token.

Every attempt leaves an audit row: success, failure (and why, which only the audit trail
says), and refusal while a name is throttled. The password itself goes nowhere but argon2.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import psycopg

from access import passwords, tokens
from access.audit import record
from access.errors import LockedOutError, SignInError
from access.identity import Identity, Via
from access.roles import UserRole
from access.throttle import Throttle, ThrottlePolicy
from stores.postgres import people_store
from stores.postgres.schema import LogLevel

__all__ = ["identify_email", "identify_token", "identity_of", "sign_in"]

_CATEGORY: Final = "auth"
_NAME_MAX: Final = 100
_WRONG: Final = "wrong username or password"


def sign_in(
    conn: psycopg.Connection[Any],
    username: str,
    password: str,
    *,
    source: str | None,
    policy: ThrottlePolicy | None = None,
    now: datetime | None = None,
) -> Identity:
    """The person ``username`` names, if ``password`` is theirs and the name is not throttled.

    ``conn`` must not be inside a transaction: the attempt's records commit whatever the
    outcome.

    Raises:
        LockedOutError: too many recent failures under this name; nothing was checked.
        SignInError: no active user with that name and password.
    """
    name = username.strip()[:_NAME_MAX]
    now = now or datetime.now(UTC)
    policy = policy or ThrottlePolicy()
    with conn.transaction():
        outcome = _attempt(conn, name, password, source=source, policy=policy, now=now)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def _attempt(
    conn: psycopg.Connection[Any],
    name: str,
    password: str,
    *,
    source: str | None,
    policy: ThrottlePolicy,
    now: datetime,
) -> Identity | SignInError:
    held = people_store.throttle_of(conn, name)
    throttle = Throttle(held["failures"], held["retry_at"], held["locked_until"]) if held else None
    until = throttle.refused_until(now) if throttle else None
    if throttle is not None and until is not None:
        record(
            conn,
            category=_CATEGORY,
            message="sign-in refused: too many failures",
            username=name,
            level=LogLevel.WARNING,
            source=source,
            details={"failures": throttle.failures, "until": until.isoformat()},
        )
        wait = max(1, round((until - now).total_seconds()))
        return LockedOutError(
            f"too many failed sign-ins for this name: try again in {wait} s", retry_at=until
        )
    user = people_store.user_by_name(conn, name)
    matches = passwords.verify_password(user["password_hash"] if user else None, password)
    if user is None or not matches or not user["is_active"]:
        failures = (throttle.failures if throttle else 0) + 1
        after = policy.after_failure(failures, now)
        people_store.note_failure(
            conn,
            name,
            failures=failures,
            now=now,
            retry_at=after.retry_at,
            locked_until=after.locked_until,
        )
        why = "unknown user" if user is None else "wrong password" if not matches else "disabled"
        record(
            conn,
            category=_CATEGORY,
            message=f"sign-in failed: {why}",
            username=name,
            level=LogLevel.WARNING,
            source=source,
            details={"failures": failures},
        )
        return SignInError(_WRONG)
    people_store.clear_failures(conn, name)
    people_store.signed_in(conn, user["id"], now)
    if passwords.needs_rehash(user["password_hash"]):
        people_store.update_user(
            conn, user["id"], {"password_hash": passwords.hash_password(password)}
        )
    who = identity_of(user, "password", source)
    record(conn, category=_CATEGORY, message="signed in", who=who)
    return who


def identity_of(user: people_store.Row, via: Via, source: str | None) -> Identity:
    """The identity of a ``users`` row."""
    return Identity(user["id"], user["username"], UserRole(user["role"]), via, source)


def identify_token(
    conn: psycopg.Connection[Any], secret: str, *, source: str | None = "cli"
) -> Identity:
    """The person a personal API token belongs to. ``conn`` must not be in a transaction.

    Raises:
        SignInError: not a live token of an active user (recorded, without the token).
    """
    now = datetime.now(UTC)
    with conn.transaction():
        row = (
            people_store.active_token(conn, tokens.digest(secret), now)
            if tokens.looks_like_token(secret)
            else None
        )
        if row is None or not row["is_active"]:
            record(
                conn,
                category=_CATEGORY,
                message="token refused: unknown, revoked, expired or its user disabled",
                username=row["username"] if row else None,
                level=LogLevel.WARNING,
                source=source,
            )
    if row is None or not row["is_active"]:
        raise SignInError("the API token is unknown, revoked or expired, or its user is disabled")
    return identity_of(row, "token", source)


def identify_email(conn: psycopg.Connection[Any], email: str, *, source: str | None) -> Identity:
    """The active person whose email an identity provider vouched for (OIDC sign-in).

    Raises:
        SignInError: no active user has that email (recorded).
    """
    now = datetime.now(UTC)
    with conn.transaction():
        user = people_store.user_by_email(conn, email) if email else None
        if user is None or not user["is_active"]:
            record(
                conn,
                category=_CATEGORY,
                message="sign-in refused: no active user with the provider's email",
                username=email[:_NAME_MAX] or None,
                level=LogLevel.WARNING,
                source=source,
            )
            who = None
        else:
            people_store.signed_in(conn, user["id"], now)
            who = identity_of(user, "oidc", source)
            record(conn, category=_CATEGORY, message="signed in", who=who)
    if who is None:
        raise SignInError(
            f"{email or 'the provider gave no email'}: no active fleetwatch user has this "
            "email; ask an admin to add you"
        )
    return who
