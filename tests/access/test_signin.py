"""Signing in against PostgreSQL: success, failure, throttling and lock-out, tokens, and
that no secret is ever written anywhere but as a hash."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from access import Identity, LockedOutError, SignInError, ThrottlePolicy, UserRole
from access.signin import identify_email, identify_token, sign_in
from access.users import create_token, revoke_token, set_active
from tests.access.conftest import PASSWORDS


def _audit(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT level, category, message, username, source FROM system_logs ORDER BY id"
    ).fetchall()


def test_sign_in_returns_the_person_and_records_it(
    conn: psycopg.Connection[Any], people: dict[str, Identity]
) -> None:
    """A right password gives the person's identity; the audit trail says who and from where."""
    who = sign_in(conn, "Oscar", PASSWORDS["oscar"], source="10.0.0.7")
    assert (who.username, who.role, who.via) == ("oscar", UserRole.OPERATOR, "password")
    assert _audit(conn)[-1] == ("INFO", "auth", "signed in", "oscar", "10.0.0.7")
    assert conn.execute(
        "SELECT last_sign_in_at IS NOT NULL FROM users WHERE username = 'oscar'"
    ).fetchone() == (True,)


@pytest.mark.usefixtures("people")
def test_wrong_password_and_unknown_name_fail_alike(conn: psycopg.Connection[Any]) -> None:
    """Both say only "wrong username or password"; the audit trail alone says which."""
    with pytest.raises(SignInError, match=r"^wrong username or password$"):
        sign_in(conn, "vera", "not-her-password", source="10.0.0.9")
    with pytest.raises(SignInError, match=r"^wrong username or password$"):
        sign_in(conn, "nobody", "whatever-password", source="10.0.0.9")
    assert _audit(conn)[-2:] == [
        ("WARNING", "auth", "sign-in failed: wrong password", "vera", "10.0.0.9"),
        ("WARNING", "auth", "sign-in failed: unknown user", "nobody", "10.0.0.9"),
    ]


def test_lock_out_holds_against_the_right_password(
    conn: psycopg.Connection[Any], people: dict[str, Identity]
) -> None:
    """After lock_after failures even the right password is refused until the lock ends, and
    a success afterwards clears the count."""
    policy = ThrottlePolicy(free_failures=1, base_delay_s=1, max_delay_s=2, lock_after=4)
    now = datetime.now(UTC)
    for attempt in range(4):
        with pytest.raises(SignInError) as raised:
            sign_in(conn, "vera", f"guess-{attempt}", source="x", policy=policy, now=now)
        assert not isinstance(raised.value, LockedOutError)
        now += timedelta(seconds=3)  # past each delay, so every guess is checked
    with pytest.raises(LockedOutError, match="try again in"):
        sign_in(conn, "vera", PASSWORDS["vera"], source="x", policy=policy, now=now)
    later = now + timedelta(minutes=14)
    with pytest.raises(LockedOutError):
        sign_in(conn, "vera", PASSWORDS["vera"], source="x", policy=policy, now=later)
    assert _audit(conn)[-1][2] == "sign-in refused: too many failures"
    done = now + timedelta(minutes=16)
    assert (
        sign_in(conn, "vera", PASSWORDS["vera"], source="x", policy=policy, now=done).username
        == "vera"
    )
    assert conn.execute("SELECT count(*) FROM sign_in_throttle").fetchone() == (0,)


@pytest.mark.usefixtures("people")
def test_delay_refuses_a_quick_retry_unchecked(conn: psycopg.Connection[Any]) -> None:
    """Within the delay after a failure the next attempt is refused without being checked."""
    policy = ThrottlePolicy(free_failures=1, base_delay_s=30, max_delay_s=30, lock_after=9)
    now = datetime.now(UTC)
    for guess in ("a-first-guess", "a-second-guess"):
        with pytest.raises(SignInError):
            sign_in(conn, "ada", guess, source="x", policy=policy, now=now)
    with pytest.raises(LockedOutError, match="try again in 30 s"):
        sign_in(conn, "ada", PASSWORDS["ada"], source="x", policy=policy, now=now)


def test_disabled_person_cannot_sign_in_nor_use_a_token(
    conn: psycopg.Connection[Any], people: dict[str, Identity]
) -> None:
    """Disabling a user stops both their password and their tokens."""
    token = create_token(conn, people["oscar"], "script")
    set_active(conn, people["ada"], "oscar", active=False)
    with pytest.raises(SignInError):
        sign_in(conn, "oscar", PASSWORDS["oscar"], source="x")
    with pytest.raises(SignInError, match="disabled"):
        identify_token(conn, token)


def test_token_identifies_its_person_until_revoked(
    conn: psycopg.Connection[Any], people: dict[str, Identity]
) -> None:
    """A personal token acts as its owner; a revoked or made-up one is refused."""
    token = create_token(conn, people["oscar"], "nightly")
    who = identify_token(conn, token)
    assert (who.username, who.role, who.via, who.source) == (
        "oscar",
        UserRole.OPERATOR,
        "token",
        "cli",
    )
    assert revoke_token(conn, people["oscar"], "nightly")
    with pytest.raises(SignInError):
        identify_token(conn, token)
    with pytest.raises(SignInError):
        identify_token(conn, "fwt_" + "A" * 43)


def test_secrets_are_kept_only_as_hashes_and_never_logged(
    conn: psycopg.Connection[Any],
    people: dict[str, Identity],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Passwords and tokens appear in no log line, no audit row and no error message; the
    database holds argon2id hashes and SHA-256 digests only."""
    caplog.set_level(logging.DEBUG)
    token = create_token(conn, people["ada"], "backup")
    messages: list[str] = []
    for password in ("ada-wrong-password", PASSWORDS["ada"]):
        try:
            sign_in(conn, "ada", password, source="x")
        except SignInError as exc:
            messages.append(str(exc))
    identify_token(conn, token)
    secrets = [*PASSWORDS.values(), "ada-wrong-password", token]
    dump = "\n".join(
        str(row) for table in ("system_logs", "users", "api_tokens", "sign_in_throttle")
        for row in conn.execute(f"SELECT * FROM {table}").fetchall()
    )  # fmt: skip
    logged = caplog.text + "\n".join(messages)
    for secret in secrets:
        assert secret not in dump
        assert secret not in logged
    hashes = [row[0] for row in conn.execute("SELECT password_hash FROM users").fetchall()]
    assert all(h.startswith("$argon2id$") for h in hashes)


def test_provider_email_names_an_active_person(
    conn: psycopg.Connection[Any], people: dict[str, Identity]
) -> None:
    """A single sign-on email maps to its user and role; an unknown or disabled one is
    refused and recorded."""
    who = identify_email(conn, "OSCAR@example.com", source="10.0.0.3")
    assert (who.username, who.role, who.via) == ("oscar", UserRole.OPERATOR, "oidc")
    with pytest.raises(SignInError, match="no active fleetwatch user has this email"):
        identify_email(conn, "mallory@example.com", source="10.0.0.3")
    assert _audit(conn)[-1] == (
        "WARNING", "auth", "sign-in refused: no active user with the provider's email",
        "mallory@example.com", "10.0.0.3",
    )  # fmt: skip
    set_active(conn, people["ada"], "oscar", active=False)
    with pytest.raises(SignInError):
        identify_email(conn, "oscar@example.com", source=None)
