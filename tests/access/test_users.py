"""Managing people: who may, the first admin, the last admin, and the audit of each change."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from access import ForbiddenError, Identity, Permission, UserError, UserRole, acting
from access.signin import sign_in
from access.users import add_user, reset_demo_users, set_password, set_role


def test_first_admin_needs_no_one_but_later_users_need_an_admin(
    conn: psycopg.Connection[Any],
) -> None:
    """The database owner makes the first admin only; a second user needs an admin."""
    with pytest.raises(ForbiddenError, match="first user must be an admin"):
        add_user(
            conn, None, username="op", email="op@x.io", role=UserRole.OPERATOR, password="p" * 12
        )
    add_user(conn, None, username="root1", email="r@x.io", role=UserRole.ADMIN, password="p" * 12)
    with pytest.raises(ForbiddenError, match="an admin exists"):
        add_user(
            conn, None, username="root2", email="r2@x.io", role=UserRole.ADMIN, password="p" * 12
        )
    row = conn.execute("SELECT username, message FROM system_logs").fetchone()
    assert row == ("database-owner", "add user root1")


def test_viewer_and_operator_may_not_manage_people(
    conn: psycopg.Connection[Any], people: dict[str, Identity]
) -> None:
    """A refused change says which role it needs and leaves a WARNING audit row."""
    for name in ("vera", "oscar"):
        with pytest.raises(ForbiddenError, match="needs the admin role"):
            set_role(conn, people[name], "vera", UserRole.ADMIN)
    rows = conn.execute(
        "SELECT level, username, message FROM system_logs WHERE message LIKE 'refused%' ORDER BY id"
    ).fetchall()
    assert rows == [
        ("WARNING", "vera", "refused: set the role of vera to admin"),
        ("WARNING", "oscar", "refused: set the role of vera to admin"),
    ]
    assert conn.execute("SELECT role FROM users WHERE username = 'vera'").fetchone() == ("viewer",)


def test_last_admin_is_kept(conn: psycopg.Connection[Any], people: dict[str, Identity]) -> None:
    """The only active admin cannot be demoted; once another exists, they can."""
    with pytest.raises(UserError, match="last active admin"):
        set_role(conn, people["ada"], "ada", UserRole.VIEWER)
    set_role(conn, people["ada"], "oscar", UserRole.ADMIN)
    assert set_role(conn, people["ada"], "ada", UserRole.OPERATOR)["role"] == "operator"


def test_weak_or_taken_is_refused(
    conn: psycopg.Connection[Any], people: dict[str, Identity]
) -> None:
    """Short passwords, the username as password, bad names and taken names are refused."""
    cases = [
        ("newbie", "short", "at least 10"),
        ("newbie1234", "NEWBIE1234", "cannot be the username"),
        ("bad name", "long-enough-pw", "username is"),
        ("vera", "long-enough-pw", "exists"),
    ]
    for username, password, error in cases:
        with pytest.raises(UserError, match=error):
            add_user(
                conn, people["ada"], username=username, email="someone@x.io",
                role=UserRole.VIEWER, password=password,
            )  # fmt: skip
    assert conn.execute("SELECT count(*) FROM users").fetchone() == (3,)


def test_people_change_their_own_password_only(
    conn: psycopg.Connection[Any], people: dict[str, Identity]
) -> None:
    """Anyone changes their own password; someone else's needs an admin."""
    set_password(conn, people["vera"], "vera", "a-new-viewer-passphrase")
    assert sign_in(conn, "vera", "a-new-viewer-passphrase", source="x").username == "vera"
    with pytest.raises(ForbiddenError):
        set_password(conn, people["vera"], "oscar", "taken-over-passphrase")
    set_password(conn, people["ada"], "oscar", "reset-by-the-admin")
    assert sign_in(conn, "oscar", "reset-by-the-admin", source="x").username == "oscar"


def test_action_and_its_audit_row_commit_together(
    conn: psycopg.Connection[Any], people: dict[str, Identity]
) -> None:
    """A body that fails leaves neither its change nor an audit row; one that succeeds both."""
    before = conn.execute("SELECT count(*) FROM system_logs").fetchone()

    def fail() -> None:
        with acting(conn, people["oscar"], Permission.EDIT_RULES, "break it", category="rule"):
            conn.execute("UPDATE users SET email = 'changed@x.io' WHERE username = 'vera'")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail()
    assert conn.execute("SELECT count(*) FROM system_logs").fetchone() == before
    assert conn.execute("SELECT email FROM users WHERE username = 'vera'").fetchone() == (
        "vera@example.com",
    )
    with acting(conn, people["oscar"], Permission.EDIT_RULES, "tidy", category="rule") as note:
        note.details["count"] = 2
    row = conn.execute(
        "SELECT username, message, details FROM system_logs ORDER BY id DESC"
    ).fetchone()
    assert row == ("oscar", "tidy", {"count": 2})


def test_demo_users_get_fresh_passwords_each_time(conn: psycopg.Connection[Any]) -> None:
    """The demo's three users are made, then reset with new passwords that work."""
    first = reset_demo_users(conn)
    second = reset_demo_users(conn)
    assert set(first) == {"demo-admin", "demo-operator", "demo-viewer"}
    assert all(first[name] != second[name] for name in first)
    who = sign_in(conn, "demo-operator", second["demo-operator"], source="x")
    assert who.role is UserRole.OPERATOR
    with pytest.raises(Exception, match="wrong username"):
        sign_in(conn, "demo-viewer", first["demo-viewer"], source="x")
