"""The dashboard's role reads every table, now and after a migration, and changes nothing
but what the alerting pages' operator actions change."""

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
from stores.postgres.roles import ensure_readonly_role
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


def test_readonly_role_takes_the_operator_actions_only(
    owner: Engine, pg_settings: PostgresSettings, role: str
) -> None:
    """It may acknowledge and resolve events, edit rules and templates, retry a delivery;
    never a device's row nor an event's value."""
    from alerting import builtin
    from alerting.book import template_to_row
    from stores.postgres import alerting_store as store

    ensure_readonly_role(owner, role, "pass")
    with psycopg.connect(str(pg_settings.database_url), autocommit=True) as conn:
        builtin.install(conn)
        rule_id = conn.execute("SELECT id FROM rules LIMIT 1").fetchone()
        assert rule_id is not None
        conn.execute(
            "INSERT INTO events (rule_id, subject, severity, message) "
            "VALUES (%s, '1', 'warning', 'x')",
            [rule_id[0]],
        )
    with _connect(pg_settings, role, "pass") as conn:
        assert store.acknowledge_event(conn, 1, "ana", "seen")
        with conn.transaction():
            assert store.resolve_by_person(conn, 1, "ana", None)
        store.update_rule(conn, "Device offline", {"is_enabled": False}, "ana")
        template = template_to_row(builtin.OPERATORS) | {"name": "ops-2"}
        store.save_template(conn, template, "ana", replace=False)
        for statement in ("UPDATE events SET value = 1", "UPDATE devices SET hostname = 'X'"):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)
