"""The dashboard's roles: the reader reads every table but the secrets, now and after a
migration, and writes nothing; the actions role writes what people's actions write, only."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors
from sqlalchemy import Engine, text

from fleetwatch.settings import PostgresSettings
from stores.errors import StoreError
from stores.postgres import make_engine
from stores.postgres.migrate import upgrade
from stores.postgres.roles import ensure_actions_role, ensure_readonly_role
from tests.conftest import unique_name


@pytest.fixture
def owner(pg_settings: PostgresSettings) -> Iterator[Engine]:
    """An engine of the tables' owner on a migrated database with one device."""
    upgrade(pg_settings)
    engine = make_engine(pg_settings, pool_size=1)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO devices (mac_address, hostname) VALUES ('aa:bb:cc:00:00:01', 'D1')")
        )
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def role(owner: Engine) -> Iterator[str]:
    """A unique role name, dropped with its grants after the test."""
    name = unique_name("ro")
    try:
        yield name
    finally:
        with owner.begin() as conn:
            if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": name}).first():
                conn.execute(text(f'DROP OWNED BY "{name}"'))
                conn.execute(text(f'DROP ROLE "{name}"'))


def _connect(settings: PostgresSettings, role: str, password: str) -> psycopg.Connection:
    host = settings.database_url.hosts()[0]
    return psycopg.connect(
        host=host["host"],
        port=host["port"],
        dbname=(settings.database_url.path or "").lstrip("/"),
        user=role,
        password=password,
        autocommit=True,
    )


def test_readonly_role_selects_but_never_writes(
    owner: Engine, role: str, pg_settings: PostgresSettings
) -> None:
    """SELECT works; INSERT, UPDATE and DELETE are refused for lack of privilege."""
    ensure_readonly_role(owner, role, "first-pass'word")
    ensure_readonly_role(owner, role, "s3cret'pass")  # idempotent; the password changes
    with _connect(pg_settings, role, "s3cret'pass") as conn:
        assert conn.execute("SELECT hostname FROM devices").fetchall() == [("D1",)]
        assert conn.execute("SELECT count(*) FROM alarm_events").fetchone() == (0,)
        for statement in (
            "INSERT INTO devices (mac_address, hostname) VALUES ('aa:bb:cc:00:00:02', 'D2')",
            "UPDATE devices SET hostname = 'X'",
            "DELETE FROM devices",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)


def test_readonly_role_reads_tables_created_later(
    owner: Engine, role: str, pg_settings: PostgresSettings
) -> None:
    """A table a later migration creates is readable without granting again."""
    ensure_readonly_role(owner, role, "pw")
    with owner.begin() as conn:
        conn.execute(text("CREATE TABLE later_table (id int)"))
        conn.execute(text("INSERT INTO later_table VALUES (7)"))
    with _connect(pg_settings, role, "pw") as conn:
        assert conn.execute("SELECT id FROM later_table").fetchall() == [(7,)]
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("INSERT INTO later_table VALUES (8)")


@pytest.mark.parametrize(("name", "password"), [("Bad-Name", "pw"), ("ok_name", "")])
def test_readonly_role_rejects_bad_input(owner: Engine, name: str, password: str) -> None:
    """A role name that is not a plain identifier, or an empty password, is refused early."""
    with pytest.raises(StoreError):
        ensure_readonly_role(owner, name, password)


def test_readonly_role_writes_nothing_and_sees_no_secret(
    owner: Engine, pg_settings: PostgresSettings, role: str
) -> None:
    """It cannot acknowledge an event nor add an audit row; it reads users without their
    password hashes, and neither tokens nor sign-in throttling."""
    _fill(pg_settings)
    ensure_readonly_role(owner, role, "pass")
    with _connect(pg_settings, role, "pass") as conn:
        assert conn.execute("SELECT username, role FROM users").fetchall() == [("ada", "admin")]
        for statement in (
            "UPDATE events SET status = 'acknowledged'",
            "UPDATE alarm_events SET acknowledged = true",
            "INSERT INTO system_logs (level, category, message) VALUES ('INFO', 'x', 'y')",
            "SELECT password_hash FROM users",
            "SELECT * FROM users",
            "SELECT * FROM api_tokens",
            "SELECT * FROM sign_in_throttle",
            "SELECT * FROM device_tokens",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)


def _fill(settings: PostgresSettings) -> None:
    """The built-in rules, one event on them, an admin with a token."""
    from alerting import builtin
    from tests.support.people import add_people

    with psycopg.connect(str(settings.database_url), autocommit=True) as conn:
        builtin.install(conn)
        rule_id = conn.execute("SELECT id FROM rules LIMIT 1").fetchone()
        assert rule_id is not None
        conn.execute(
            "INSERT INTO events (rule_id, subject, severity, message) "
            "VALUES (%s, '1', 'warning', 'x')",
            [rule_id[0]],
        )
        conn.execute(
            "INSERT INTO device_status (device_id, is_online) SELECT id, true FROM devices"
        )
        add_people(conn)
        conn.execute("DELETE FROM users WHERE username <> 'ada'")


def test_actions_role_takes_peoples_actions_only(
    owner: Engine, pg_settings: PostgresSettings, role: str
) -> None:
    """It signs people in, acknowledges and resolves, edits rules and templates, sends and
    cancels commands, writes audit rows; never a device's row, an event's value, a token
    or the audit trail's past."""
    from access import actions
    from access.signin import sign_in
    from alerting import builtin
    from alerting.book import template_to_row
    from ingest.commands import CommandSpec
    from stores.postgres.commands_store import TargetFilter
    from tests.support.people import password_of

    _fill(pg_settings)
    ensure_actions_role(owner, role, "pass")
    with _connect(pg_settings, role, "pass") as conn:
        ada = sign_in(conn, "ada", password_of("ada"), source="test")
        assert actions.acknowledge_event(conn, ada, 1, "seen")
        assert actions.resolve_event(conn, ada, 1, None)
        assert actions.set_rule_enabled(conn, ada, "Device offline", enabled=False)
        template = template_to_row(builtin.OPERATORS) | {"name": "ops-2"}
        actions.save_template(conn, ada, template, replace=False)
        (sent,) = actions.send_command(
            conn, ada, CommandSpec("reboot", {}), TargetFilter(hostnames=["D1"])
        )
        assert actions.cancel_commands(conn, ada, [str(sent.request_id)]) == [str(sent.request_id)]
        for statement in (
            "UPDATE events SET value = 1",
            "UPDATE devices SET hostname = 'X'",
            "DELETE FROM system_logs",
            "UPDATE system_logs SET message = 'nothing happened'",
            "SELECT * FROM api_tokens",
            "SELECT token_hash FROM device_tokens",
            "DELETE FROM command_log",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)
    with owner.connect() as conn:
        audited = conn.execute(text("SELECT count(*) FROM system_logs WHERE username = 'ada'"))
        assert audited.scalar_one() >= 7  # signed in (twice), six actions
