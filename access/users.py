"""Managing people: adding them, their roles, passwords and tokens; the demo's users.

Every change is an admin's (``Permission.MANAGE_USERS``) and is recorded, with one exception:
the first admin, made with the database owner's credentials when no active admin exists.
A person may change their own password and make or revoke their own tokens. The last active
admin cannot be demoted or disabled, so the fleet is never left without one.
"""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import psycopg

from access import passwords, tokens
from access.audit import acting, record, require
from access.errors import ForbiddenError, UserError
from access.identity import Identity
from access.roles import Permission, UserRole
from stores.postgres import people_store
from stores.postgres.people_store import Row, UserTakenError

__all__ = [
    "DEMO_USERS",
    "add_user",
    "create_token",
    "reset_demo_users",
    "revoke_token",
    "set_active",
    "set_password",
    "set_role",
    "unlock",
]

_USERNAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,49}$")
_EMAIL: Final = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,99}$")
_CATEGORY: Final = "user"
OWNER: Final = Identity(None, "database-owner", UserRole.ADMIN, "owner", "cli")
"""Who acts with the database owner's credentials (the first admin, the demo's users)."""

DEMO_USERS: Final = {
    "demo-admin": UserRole.ADMIN,
    "demo-operator": UserRole.OPERATOR,
    "demo-viewer": UserRole.VIEWER,
}


def _user(conn: psycopg.Connection[Any], username: str) -> Row:
    row = people_store.user_by_name(conn, username)
    if row is None:
        raise UserError(f"no user named {username}")
    return row


def add_user(
    conn: psycopg.Connection[Any],
    who: Identity | None,
    *,
    username: str,
    email: str,
    role: UserRole,
    password: str,
) -> Row:
    """Add a person; ``who`` None is the database owner, allowed only for the first admin.

    Raises:
        UserError: a malformed name or email, a weak password, or either taken.
        ForbiddenError: ``who`` is not an admin, or the owner adds anyone but a first admin.
    """
    if not _USERNAME.match(username):
        raise UserError(
            "a username is 1-50 letters, digits and . _ @ -, starting with a letter or digit"
        )
    if not _EMAIL.match(email) or len(email) > 100:
        raise UserError(f"{email!r} is not an email address")
    passwords.check_strength(password, username=username)
    if who is None:
        if role is not UserRole.ADMIN or people_store.count_active_admins(conn) > 0:
            raise ForbiddenError(
                "an admin exists: add users as one (FLEETWATCH_TOKEN, or --as NAME)"
                if role is UserRole.ADMIN
                else "the first user must be an admin (--role admin)"
            )
        who = OWNER
    row = {
        "id": uuid.uuid4(),
        "username": username,
        "email": email,
        "role": role.value,
        "password_hash": passwords.hash_password(password),
    }
    with acting(conn, who, Permission.MANAGE_USERS, f"add user {username}", category=_CATEGORY):
        try:
            added = people_store.add_user(conn, row)
        except UserTakenError as exc:
            raise UserError(str(exc)) from exc
    return added


def set_role(conn: psycopg.Connection[Any], who: Identity, username: str, role: UserRole) -> Row:
    """Give ``username`` the role ``role``.

    Raises:
        UserError: no such user, or it would leave no active admin.
        ForbiddenError: ``who`` is not an admin.
    """
    what = f"set the role of {username} to {role}"
    with acting(conn, who, Permission.MANAGE_USERS, what, category=_CATEGORY) as note:
        user = _user(conn, username)
        note.details = {"from": user["role"], "to": role.value}
        if user["role"] == UserRole.ADMIN and role is not UserRole.ADMIN:
            _keep_an_admin(conn, user)
        return people_store.update_user(conn, user["id"], {"role": role.value})


def set_active(conn: psycopg.Connection[Any], who: Identity, username: str, active: bool) -> Row:
    """Enable or disable ``username`` (a disabled person cannot sign in; tokens stop working).

    Raises:
        UserError: no such user, or it would leave no active admin.
        ForbiddenError: ``who`` is not an admin.
    """
    what = f"{'enable' if active else 'disable'} user {username}"
    with acting(conn, who, Permission.MANAGE_USERS, what, category=_CATEGORY):
        user = _user(conn, username)
        if not active and user["role"] == UserRole.ADMIN:
            _keep_an_admin(conn, user)
        return people_store.update_user(conn, user["id"], {"is_active": active})


def _keep_an_admin(conn: psycopg.Connection[Any], user: Row) -> None:
    if user["is_active"] and people_store.count_active_admins(conn) <= 1:
        raise UserError(f"{user['username']} is the last active admin: make another admin first")


def set_password(
    conn: psycopg.Connection[Any], who: Identity, username: str, password: str
) -> None:
    """Change ``username``'s password: their own, or anyone's for an admin.

    Raises:
        UserError: no such user, or a weak password.
        ForbiddenError: someone else's password, and ``who`` is not an admin.
    """
    own = who.username.casefold() == username.casefold() and who.via != "owner"
    passwords.check_strength(password, username=username)
    what = f"change the password of {username}"
    if own:
        with conn.transaction():
            user = _user(conn, username)
            people_store.update_user(
                conn, user["id"], {"password_hash": passwords.hash_password(password)}
            )
            record(conn, category=_CATEGORY, message=what, who=who)
        return
    with acting(conn, who, Permission.MANAGE_USERS, what, category=_CATEGORY):
        user = _user(conn, username)
        people_store.update_user(
            conn, user["id"], {"password_hash": passwords.hash_password(password)}
        )
        people_store.clear_failures(conn, username)


def unlock(conn: psycopg.Connection[Any], who: Identity, username: str) -> None:
    """Forget ``username``'s failed sign-ins (ends a lock-out now).

    Raises:
        ForbiddenError: ``who`` is not an admin.
    """
    with acting(conn, who, Permission.MANAGE_USERS, f"unlock {username}", category=_CATEGORY):
        people_store.clear_failures(conn, username)


def create_token(
    conn: psycopg.Connection[Any], who: Identity, name: str, *, days: float | None = None
) -> str:
    """A new personal API token of ``who`` (returned once, stored as a digest).

    Raises:
        UserError: the name is empty or taken, or ``who`` is the database owner.
    """
    if who.user_id is None:
        raise UserError("tokens belong to a person: act as one (--as NAME)")
    if not name.strip() or len(name) > 100:
        raise UserError("a token needs a name of 1-100 characters")
    made = tokens.new_token()
    expires = datetime.now(UTC) + timedelta(days=days) if days else None
    with conn.transaction():
        try:
            people_store.add_token(
                conn,
                who.user_id,
                name,
                prefix=made.prefix,
                token_hash=made.digest,
                expires_at=expires,
            )
        except UserTakenError as exc:
            raise UserError(str(exc)) from exc
        record(
            conn,
            category=_CATEGORY,
            message=f"create API token {name}",
            who=who,
            details={"prefix": made.prefix, "expires": expires.isoformat() if expires else None},
        )
    return made.secret


def revoke_token(
    conn: psycopg.Connection[Any], who: Identity, name: str, *, username: str | None = None
) -> bool:
    """Revoke a token of ``who`` (or of ``username``, for an admin); False when none is live.

    Raises:
        UserError: no such user.
        ForbiddenError: another person's token, and ``who`` is not an admin.
    """
    owner = username or who.username
    what = f"revoke API token {name} of {owner}"
    if owner.casefold() != who.username.casefold():
        require(conn, who, Permission.MANAGE_USERS, what, category=_CATEGORY)
    with conn.transaction():
        user = _user(conn, owner)
        done = people_store.revoke_token(conn, user["id"], name, datetime.now(UTC))
        if done:
            record(conn, category=_CATEGORY, message=what, who=who)
    return done


def reset_demo_users(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """Make (or reset) the demo's admin, operator and viewer with fresh random passwords.

    For the demo only: it acts as the database owner. Returns username to password.
    """
    made: dict[str, str] = {}
    with conn.transaction():
        for username, role in DEMO_USERS.items():
            password = secrets.token_urlsafe(12)
            hashed = passwords.hash_password(password)
            user = people_store.user_by_name(conn, username)
            if user is None:
                people_store.add_user(
                    conn,
                    {
                        "id": uuid.uuid4(),
                        "username": username,
                        "email": f"{username}@demo.invalid",
                        "role": role.value,
                        "password_hash": hashed,
                    },
                )
            else:
                people_store.update_user(
                    conn,
                    user["id"],
                    {"password_hash": hashed, "role": role.value, "is_active": True},
                )
            people_store.clear_failures(conn, username)
            made[username] = password
        record(
            conn,
            category=_CATEGORY,
            message="reset the demo users",
            who=OWNER,
            details={"users": sorted(made)},
        )
    return made
