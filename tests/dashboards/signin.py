"""Signing in to the dashboard under AppTest, as the people of ``tests.support.people``."""

from __future__ import annotations

from typing import Final

from streamlit.testing.v1 import AppTest

from fleetwatch.dashboard_cli import APP
from tests.support.people import password_of

TIMEOUT_S: Final = 60


def sign_in(at: AppTest, username: str, password: str | None = None) -> AppTest:
    """Fill the sign-in form and submit it; returns the app after the run."""
    at.text_input(key="sign_in_username").input(username)
    at.text_input(key="sign_in_password").input(password or password_of(username))
    at.button[0].click()
    return at.run()


def signed_in_app(username: str = "ada") -> AppTest:
    """The app after ``username`` signed in (an admin by default: every page is offered)."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S).run()
    assert not at.exception, at.exception
    at = sign_in(at, username)
    assert not at.exception, at.exception
    return at
