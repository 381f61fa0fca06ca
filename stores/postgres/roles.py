"""Database roles of the dashboard: one that only reads, one that only takes people's actions.

The dashboard reads with the first (FLEETWATCH_DASHBOARD_DATABASE_URL): SELECT on every
table except the secrets (password hashes, token digests, sign-in throttling), so a bug or
an engineer's experiment on a page can change nothing. Sign-in, audit rows and operator
actions go through the second (FLEETWATCH_DASHBOARD_ACTIONS_DATABASE_URL), which may write
exactly what those actions write (``ACTION_GRANTS``) and nothing else: never a device, its
status, its history or a dead letter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from psycopg import sql
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from stores.errors import StoreError, StoreUnavailableError

__all__ = ["ACTION_GRANTS", "PUBLIC_USER_COLUMNS", "ensure_actions_role", "ensure_readonly_role"]

_ROLE_NAME: Final = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

SECRET_TABLES: Final = ("users", "api_tokens", "sign_in_throttle", "device_tokens")
"""Tables the read-only role may not read whole."""
PUBLIC_USER_COLUMNS: Final = (
    "id", "username", "email", "role", "is_active", "created_at", "updated_at",
    "last_sign_in_at", "password_changed_at",
)  # fmt: skip
"""The columns of ``users`` the read-only role sees (everything but the password hash)."""

ACTION_GRANTS: Final = (
    # acknowledging and resolving panel alarms and rule events
    (
        "UPDATE (acknowledged, acknowledged_by, acknowledged_at, notes, resolved_at)",
        "alarm_events",
    ),
    (
        "UPDATE (status, acknowledged_by, acknowledged_at, acknowledge_note, resolved_by, "
        "resolved_at, resolve_note)",
        "events",
    ),
    ("UPDATE (event_id, event_severity, clear_since)", "rule_states"),
    # rules, templates, silences, deliveries
    ("INSERT, UPDATE", "rules"),
    ("INSERT, UPDATE", "notification_templates"),
    ("INSERT, UPDATE (ends_at, ended_by)", "silences"),
    ("UPDATE (status, next_attempt_at, max_attempts, claimed_until)", "notification_deliveries"),
    # sending and cancelling commands; queuing locks the devices (FOR NO KEY UPDATE needs an
    # UPDATE privilege: updated_at is the harmless one)
    ("INSERT, UPDATE (status, next_retry_at, notes)", "command_log"),
    ("UPDATE (updated_at)", "devices"),
    # people: signing in, throttling, managing users, the audit trail
    (
        "INSERT, UPDATE (role, is_active, email, password_hash, last_sign_in_at, "
        "password_changed_at)",
        "users",
    ),
    ("SELECT, INSERT, UPDATE, DELETE", "sign_in_throttle"),
    ("INSERT", "system_logs"),
)
"""The writes of people's actions on the dashboard: (privileges, table)."""
_ACTION_SEQUENCES: Final = (
    "notification_templates_id_seq",
    "silences_id_seq",
    "command_log_id_seq",
    "system_logs_id_seq",
)


def _check(name: str, password: str) -> None:
    if not _ROLE_NAME.match(name):
        raise StoreError(f"role name must be a lower-case identifier, got {name!r}")
    if not password:
        raise StoreError(f"the role {name} needs a password")


def _login_role(conn: Connection, name: str, password: str, schema: str) -> list[sql.Composed]:
    """Statements creating or renewing ``name``: a login that may read ``schema``."""
    role, where = sql.Identifier(name), sql.Identifier(schema)
    exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": name})
    verb = sql.SQL("ALTER") if exists.first() else sql.SQL("CREATE")
    database = sql.Identifier(str(conn.execute(text("SELECT current_database()")).scalar_one()))
    return [
        sql.SQL("{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
            verb, role, sql.Literal(password)
        ),
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, role),
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(where, role),
        sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(where, role),
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
            where, role
        ),
    ]


def _run(
    engine: Engine, name: str, build: Sequence[sql.Composed], schema: str, password: str
) -> None:
    try:
        with engine.begin() as conn:
            for statement in [*_login_role(conn, name, password, schema), *build]:
                _execute(conn, statement)
    except OperationalError as exc:
        raise StoreUnavailableError(f"PostgreSQL failed creating role {name}: {exc.orig}") from exc
    except DBAPIError as exc:
        raise StoreError(f"PostgreSQL refused creating role {name}: {exc.orig}") from exc


def ensure_readonly_role(
    engine: Engine, name: str, password: str, *, schema: str = "public"
) -> None:
    """Create (or update) the login role ``name`` that may only read ``schema``, secrets aside.

    The role gets CONNECT on the engine's database, USAGE on ``schema``, SELECT on every
    table in it but :data:`SECRET_TABLES` (of ``users`` only :data:`PUBLIC_USER_COLUMNS`),
    and SELECT on the tables created there later by the engine's user (its default
    privileges), so a migration does not lock the dashboard out. Running it again resets the
    password (and the grants). ``engine`` must connect as the tables' owner (the user that
    runs the migrations) with the right to create roles.

    Raises:
        StoreError: ``name`` is not a plain lower-case identifier, ``password`` is empty, or
            the server refused (e.g. the engine's user may not create roles).
        StoreUnavailableError: PostgreSQL could not be reached.
    """
    _check(name, password)
    role, where = sql.Identifier(name), sql.Identifier(schema)
    hide = [
        sql.SQL("REVOKE ALL ON {}.{} FROM {}").format(where, sql.Identifier(table), role)
        for table in SECRET_TABLES
    ]
    show = sql.SQL("GRANT SELECT ({}) ON {}.{} TO {}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in PUBLIC_USER_COLUMNS),
        where,
        sql.Identifier("users"),
        role,
    )
    _run(engine, name, [*hide, show], schema, password)


def ensure_actions_role(
    engine: Engine, name: str, password: str, *, schema: str = "public"
) -> None:
    """Create (or update) the login role ``name`` of the dashboard's write path: it reads
    ``schema`` (token digests, personal and devices', aside) and writes only :data:`ACTION_GRANTS`.

    Raises:
        StoreError: a bad name or empty password, or the server refused.
        StoreUnavailableError: PostgreSQL could not be reached.
    """
    _check(name, password)
    role, where = sql.Identifier(name), sql.Identifier(schema)
    grants: list[sql.Composed] = [
        sql.SQL("REVOKE ALL ON {}.{} FROM {}").format(where, sql.Identifier(table), role)
        for table in ("api_tokens", "device_tokens")
    ]
    grants += [
        sql.SQL("GRANT {} ON {}.{} TO {}").format(
            sql.SQL(privileges), where, sql.Identifier(table), role
        )
        for privileges, table in ACTION_GRANTS
    ]
    grants += [
        sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(sql.Identifier(schema, seq), role)
        for seq in _ACTION_SEQUENCES
    ]
    _run(engine, name, grants, schema, password)


def _execute(conn: Connection, statement: sql.Composed) -> None:
    # Role DDL takes no bind parameters: psycopg composes the quoted identifiers and the
    # password literal with the connection's own escaping, inside SQLAlchemy's transaction.
    driver = conn.connection.driver_connection
    assert driver is not None  # a live connection inside engine.begin()
    with driver.cursor() as cursor:
        cursor.execute(statement)
