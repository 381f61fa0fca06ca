"""Users: the people who sign in, their roles; adding, changing and unlocking them.

For admins. Every change goes through ``access.users`` (checked, recorded); the password of
a new user is typed here once and only its argon2id hash is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl
import psycopg
import streamlit as st

from access import AccessError, Permission, UserRole
from access import users as manage
from dashboards import data, session
from stores.errors import StoreError
from stores.postgres import people_store

_ROLES = [role.value for role in UserRole]


def main() -> None:
    """The user list and the forms that change it."""
    who = session.person()
    session.require_page(who, Permission.MANAGE_USERS, "manage users")
    st.title("Users")
    if flash := st.session_state.pop("users_flash", None):
        st.success(flash)
    with data.shown_errors(), session.connect() as conn:
        rows = people_store.list_users(conn)
    st.dataframe(
        pl.DataFrame(
            [{k: row[k] for k in ("username", "email", "role", "is_active", "last_sign_in_at")}
             for row in rows]
        ),
        hide_index=True,
        width="stretch",
    )  # fmt: skip
    names = [row["username"] for row in rows]
    add, change = st.tabs(["Add a person", "Change a person"])
    with add, st.form("user_add", clear_on_submit=True):
        cols = st.columns(3)
        username = cols[0].text_input("Username", key="new_username")
        email = cols[1].text_input("Email", key="new_email")
        role = cols[2].selectbox("Role", _ROLES, key="new_role")
        password = st.text_input("Password", type="password", key="new_password")
        if st.form_submit_button("Add"):
            _do(
                lambda conn: manage.add_user(
                    conn, who, username=username, email=email, role=UserRole(role),
                    password=password,
                ),
                f"Added {username} ({role})",
            )  # fmt: skip
    with change, st.form("user_change"):
        name = st.selectbox("Person", names, key="change_user")
        new_role = st.selectbox("Role", _ROLES, key="change_role")
        buttons = st.columns(4)
        set_role = buttons[0].form_submit_button("Set role")
        disable = buttons[1].form_submit_button("Disable")
        enable = buttons[2].form_submit_button("Enable")
        unlock = buttons[3].form_submit_button("Unlock sign-in")
    if name and set_role:
        _do(lambda c: manage.set_role(c, who, name, UserRole(new_role)), f"{name} is {new_role}")
    elif name and (disable or enable):
        _do(
            lambda c: manage.set_active(c, who, name, enable),
            f"{name} {'enabled' if enable else 'disabled'}",
        )
    elif name and unlock:
        _do(lambda c: manage.unlock(c, who, name), f"{name} may sign in again")


def _do(change: Callable[[psycopg.Connection[Any]], object], done: str) -> None:
    try:
        with session.connect() as conn:
            change(conn)
    except (AccessError, StoreError) as exc:
        st.error(str(exc))
        return
    st.session_state["users_flash"] = done
    st.rerun()


main()
