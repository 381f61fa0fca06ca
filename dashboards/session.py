"""Who is at the dashboard: signing in and out, when a sign-in expires, and the write path.

Every page needs a signed-in person (:func:`gate`, run by the entry point before any page).
The person is kept in the server-side session state, which the browser cannot write; each
run reloads their role and whether they are still active, so a disabled account or a new
role takes effect on the next click. A sign-in expires after a stretch without clicks and
after a number of hours however busy (DashboardSettings).

Reads go through the read-only role (``dashboards.data``). Signing in, audit rows and
operator actions go through :func:`connect`: the actions role
(FLEETWATCH_DASHBOARD_ACTIONS_DATABASE_URL), granted exactly those writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import psycopg
import streamlit as st

from access import (
    ForbiddenError,
    Identity,
    Permission,
    SignInError,
    UserRole,
    record,
    require,
    sign_in,
)
from access.signin import identify_email
from fleetwatch.settings import DashboardSettings, PostgresSettings, load
from stores.errors import StoreUnavailableError
from stores.postgres import people_store

__all__ = [
    "SESSION_KEY",
    "connect", "current", "gate", "person", "refuse", "require_page", "sidebar", "source",
]  # fmt: skip

SESSION_KEY: Final = "fleetwatch_signed_in"
"""Where the signed-in person is kept in the session state (server-side)."""
_KEY: Final = SESSION_KEY
_EXPIRED: Final = "fleetwatch_sign_in_expired"


@dataclass(frozen=True, slots=True)
class _SignedIn:
    who: Identity
    since: datetime
    seen: datetime


def _settings() -> DashboardSettings:
    return load(DashboardSettings)


def actions_url() -> str:
    """The write path's PostgreSQL URL (the service's when none of its own is set)."""
    url = _settings().dashboard_actions_database_url or load(PostgresSettings).database_url
    return str(url).replace("postgresql+psycopg://", "postgresql://", 1)


@contextmanager
def connect() -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection of the write path (sign-in, audit rows, actions)."""
    try:
        conn = psycopg.connect(actions_url(), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise StoreUnavailableError(f"PostgreSQL unreachable: {exc}") from exc
    with conn:
        yield conn


def source() -> str | None:
    """The browser's address, as far as the server can tell."""
    address = st.context.ip_address
    return str(address) if address else None


def current() -> Identity | None:
    """The person signed in to this session, refreshed from the database; None when nobody is
    (or their sign-in expired, or their account was disabled)."""
    signed: _SignedIn | None = st.session_state.get(_KEY)
    if signed is None:
        return None
    now = datetime.now(UTC)
    settings = _settings()
    idle = timedelta(minutes=settings.dashboard_session_idle_minutes)
    longest = timedelta(hours=settings.dashboard_session_hours)
    with connect() as conn:
        if now - signed.seen > idle or now - signed.since > longest:
            record(conn, category="auth", message="sign-in expired", who=signed.who)
            _forget(expired=True)
            return None
        assert signed.who.user_id is not None
        row = people_store.user_by_id(conn, signed.who.user_id)
    if row is None or not row["is_active"]:
        _forget(expired=True)
        return None
    who = replace(signed.who, role=UserRole(row["role"]))
    st.session_state[_KEY] = _SignedIn(who, signed.since, now)
    return who


def person() -> Identity:
    """The person :func:`gate` let in on this run (pages call this, not :func:`current`)."""
    signed: _SignedIn | None = st.session_state.get(_KEY)
    if signed is None:  # a page run without the entry point: nobody may do anything
        st.error("Sign in first.")
        st.stop()
    return signed.who


def _forget(*, expired: bool) -> None:
    st.session_state.pop(_KEY, None)
    if expired:
        st.session_state[_EXPIRED] = True


def gate() -> Identity:
    """The signed-in person; otherwise draw the sign-in form and stop the run here."""
    who = current()
    if who is not None:
        return who
    if _settings().dashboard_oidc:
        _oidc()
    else:
        _password_form()
    st.stop()


def _welcome(who: Identity) -> None:
    now = datetime.now(UTC)
    st.session_state[_KEY] = _SignedIn(who, now, now)
    st.session_state.pop(_EXPIRED, None)
    st.rerun()


def _password_form() -> None:
    st.title("fleetwatch")
    if st.session_state.get(_EXPIRED):
        st.info("Your sign-in expired: sign in again.")
    with st.form("sign_in"):
        username = st.text_input("Username", key="sign_in_username")
        password = st.text_input("Password", type="password", key="sign_in_password")
        go = st.form_submit_button("Sign in", type="primary")
    if not go:
        return
    try:
        with connect() as conn:
            who = sign_in(conn, username, password, source=source())
    except SignInError as exc:
        st.error(str(exc))
        return
    _welcome(who)


def _oidc() -> None:
    # Streamlit's native sign-in (st.login) with the provider of its [auth] secrets; the
    # provider's verified email names the fleetwatch user, whose role applies.
    st.title("fleetwatch")
    if not st.user.is_logged_in:
        st.button("Sign in with your organisation", on_click=st.login, type="primary")
        return
    email = str(st.user.get("email") or "")
    try:
        with connect() as conn:
            who = identify_email(conn, email, source=source())
    except SignInError as exc:
        st.error(str(exc))
        st.button("Sign out of the provider", on_click=st.logout)
        return
    _welcome(who)


def _sign_out() -> None:
    signed: _SignedIn | None = st.session_state.get(_KEY)
    if signed is not None:
        with connect() as conn:
            record(conn, category="auth", message="signed out", who=signed.who)
    _forget(expired=False)
    if _settings().dashboard_oidc and st.user.is_logged_in:
        st.logout()


def sidebar(who: Identity) -> None:
    """Who is signed in, and the sign-out button."""
    st.sidebar.caption(f"Signed in as **{who.username}** ({who.role})")
    st.sidebar.button("Sign out", on_click=_sign_out, key="sign_out", icon=":material/logout:")


def refuse(who: Identity, permission: Permission, what: str, *, category: str) -> None:
    """Record a refusal and show why (for a control the person should not have reached)."""
    try:
        with connect() as conn:
            require(conn, who, permission, what, category=category)
    except ForbiddenError as exc:
        st.error(str(exc))


def require_page(who: Identity, permission: Permission, what: str) -> None:
    """Stop the page here, recorded, unless ``who`` may ``permission``."""
    if who.may(permission):
        return
    refuse(who, permission, what, category="page")
    st.stop()
