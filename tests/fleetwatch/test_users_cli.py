"""``fleetwatch users`` and acting as a person from the CLI, per role, against PostgreSQL:
allowed actions succeed, refused ones say why and leave an audit row."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from fleetwatch.cli import main
from fleetwatch.settings import PostgresSettings
from stores.postgres.migrate import upgrade
from tests.support.people import add_people, password_of


@pytest.fixture
def db(pg_env: PostgresSettings) -> Iterator[psycopg.Connection[Any]]:
    """A migrated database with one active panel, ESG_ALARM_0001."""
    upgrade(pg_env)
    with psycopg.connect(str(pg_env.database_url), autocommit=True) as conn:
        device: Any = conn.execute(
            "INSERT INTO devices (mac_address, hostname, zone) "
            "VALUES ('aa:bb:cc:00:00:01', 'ESG_ALARM_0001', 3) RETURNING id"
        ).fetchone()
        conn.execute("INSERT INTO device_status (device_id, is_online) VALUES (%s, true)", device)
        yield conn


def run(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    *,
    token: str | None = None,
    stdin: str = "",
) -> tuple[int, str, str]:
    """Run the command line with FLEETWATCH_TOKEN (or none) and a piped standard input."""
    if token is None:
        monkeypatch.delenv("FLEETWATCH_TOKEN", raising=False)
    else:
        monkeypatch.setenv("FLEETWATCH_TOKEN", token)
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _audit(db: psycopg.Connection[Any]) -> tuple[Any, ...]:
    row = db.execute(
        "SELECT level, username, category, message FROM system_logs ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_first_admin_then_everyone_through_an_admin(
    db: psycopg.Connection[Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The owner makes the first admin from a piped password; a second user needs someone
    signed in, and --as reads the admin's password then the new one."""
    code, out, _ = run(
        capsys, monkeypatch, ["users", "add", "root", "--email", "root@x.io", "--role", "admin",
        "--password-stdin"], stdin="root-first-passphrase\n",
    )  # fmt: skip
    assert (code, out) == (0, "added root (admin)\n")
    code, _, err = run(capsys, monkeypatch, ["users", "add", "op", "--email", "op@x.io"])
    assert code == 4
    assert "say who you are: set FLEETWATCH_TOKEN" in err
    code, out, err = run(
        capsys, monkeypatch,
        ["users", "add", "op", "--email", "op@x.io", "--role", "operator", "--as", "root"],
        stdin="root-first-passphrase\nop-first-passphrase\n",
    )  # fmt: skip
    assert (code, out) == (0, "added op (operator)\n"), err
    code, out, _ = run(capsys, monkeypatch, ["users", "list"])
    assert "op                       operator  yes" in out
    code, _, err = run(
        capsys, monkeypatch, ["users", "add", "x", "--email", "x@x.io", "--as", "root"],
        stdin="not-roots-password\nwhatever-passphrase\n",
    )  # fmt: skip
    assert (code, err) == (4, "fleetwatch: not signed in: wrong username or password\n")


@pytest.mark.parametrize(
    ("person", "kind", "payload", "allowed"),
    [
        ("vic", "diagnostic", '{"action": "ping"}', False),
        ("ana", "diagnostic", '{"action": "ping"}', True),
        ("ana", "output_control", '{"output": "SIREN", "on": true}', True),
        ("ana", "reboot", "{}", False),
        (
            "ana",
            "ota_update",
            '{"url": "https://x.io/f.bin", "version": "3.0.0", "sha256": "' + "a" * 64 + '"}',
            False,
        ),
        ("ada", "reboot", "{}", True),
    ],
)
def test_command_send_per_role(
    db: psycopg.Connection[Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    person: str,
    kind: str,
    payload: str,
    allowed: bool,
) -> None:
    """A viewer sends nothing, an operator everyday commands, an admin SYSTEM and OTA; the
    level stored is the role's, and every attempt is in the audit trail."""
    tokens = add_people(db)
    code, out, err = run(
        capsys, monkeypatch,
        ["command", "send", kind, "--payload", payload, "--device", "ESG_ALARM_0001"],
        token=tokens[person],
    )  # fmt: skip
    stored = db.execute(
        "SELECT auth_level, initiated_by, fanout_id IS NOT NULL FROM command_log"
    ).fetchall()
    level, category, actor = _audit(db)[0], _audit(db)[2], _audit(db)[1]
    assert (actor, category) == (person, "command")
    if allowed:
        assert code == 0, err
        assert "ESG_ALARM_0001" in out
        assert stored == [({"ada": 2, "ana": 1}[person], person, True)]  # its request's id
        assert level == "INFO"
    else:
        assert code == 3
        assert err.startswith(f"refused: {person} is a")
        assert "that needs the" in err
        assert stored == []
        assert level == "WARNING"


def test_command_cancel_follows_the_role(
    db: psycopg.Connection[Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An operator cannot cancel an admin's reboot; the admin can."""
    tokens = add_people(db)
    code, out, _ = run(
        capsys, monkeypatch, ["command", "send", "reboot", "--device", "ESG_ALARM_0001"],
        token=tokens["ada"],
    )  # fmt: skip
    request_id = out.split()[0]
    code, _, err = run(capsys, monkeypatch, ["command", "cancel", request_id], token=tokens["bo"])
    assert code == 3
    assert "refused" in err
    code, out, _ = run(capsys, monkeypatch, ["command", "cancel", request_id], token=tokens["ada"])
    assert (code, out) == (0, f"cancelled {request_id}\n")
    assert _audit(db) == ("INFO", "ada", "command", "cancel 1 command(s)")


def test_user_management_is_an_admins(
    db: psycopg.Connection[Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Operators and viewers are refused set-role and disable; an admin's disable stops the
    person's token at once."""
    tokens = add_people(db)
    for person in ("ana", "vic"):
        code, _, err = run(
            capsys, monkeypatch, ["users", "set-role", "vic", "admin"], token=tokens[person]
        )
        assert code == 3
        assert "needs the admin role" in err
        assert _audit(db)[:2] == ("WARNING", person)
    code, out, _ = run(capsys, monkeypatch, ["users", "disable", "bo"], token=tokens["ada"])
    assert (code, out) == (0, "bo disabled\n")
    code, _, err = run(capsys, monkeypatch, ["events", "list"], token=tokens["bo"])
    assert code == 0  # reading needs no identity
    code, _, err = run(
        capsys, monkeypatch, ["rules", "disable", "Device offline"], token=tokens["bo"]
    )
    assert code == 4
    assert "disabled" in err


def test_tokens_are_shown_once_and_revocable(
    db: psycopg.Connection[Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """token create prints the token once (stdout only), list shows its prefix, revoke ends it."""
    add_people(db)
    code, out, err = run(
        capsys, monkeypatch, ["users", "token", "create", "nightly", "--as", "cy"],
        stdin=password_of("cy") + "\n",
    )  # fmt: skip
    token = out.strip()
    assert code == 0
    assert token.startswith("fwt_")
    assert token not in err
    code, out, _ = run(capsys, monkeypatch, ["users", "token", "list"], token=token)
    assert token[:12] in out
    assert token not in out
    code, out, _ = run(capsys, monkeypatch, ["users", "token", "revoke", "nightly"], token=token)
    assert (code, out) == (0, "token nightly revoked\n")
    code, _, _ = run(capsys, monkeypatch, ["users", "token", "list"], token=token)
    assert code == 4


def test_brute_force_from_the_cli_is_locked_out(
    db: psycopg.Connection[Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Guessing a password through --as hits the throttle: after a few failures even the
    right password is refused for now."""
    add_people(db)
    codes = []
    for guess in ("guess-one-pw", "guess-two-pw", "guess-three-pw", "guess-four-pw"):
        code, _, err = run(
            capsys, monkeypatch, ["users", "token", "list", "--as", "vic"], stdin=guess + "\n"
        )
        codes.append(code)
    assert codes == [4, 4, 4, 4]
    code, _, err = run(
        capsys, monkeypatch, ["users", "token", "list", "--as", "vic"],
        stdin=password_of("vic") + "\n",
    )  # fmt: skip
    assert code == 4
    assert "too many failed sign-ins" in err
