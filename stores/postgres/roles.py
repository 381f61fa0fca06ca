"""Database roles: a login that can read fleetwatch's tables and change only what an
operator's actions on the alerting pages change.

The dashboard connects with such a role (FLEETWATCH_DASHBOARD_DATABASE_URL), so a bug or an
engineer's experiment on a page can never write to the fleet's state: devices, their status,
the history, commands and dead letters are out of its reach. What it may write is listed in
``OPERATOR_GRANTS``: acknowledging and resolving events and panel alarms, editing rules and
notification templates, queuing a failed delivery again.
"""

from __future__ import annotations

import re
from typing import Final

from psycopg import sql
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from stores.errors import StoreError, StoreUnavailableError

__all__ = ["OPERATOR_GRANTS", "ensure_readonly_role"]

_ROLE_NAME: Final = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

OPERATOR_GRANTS: Final = (
    ("UPDATE (acknowledged, acknowledged_by, acknowledged_at, notes)", "alarm_events"),
    (
        "UPDATE (status, acknowledged_by, acknowledged_at, acknowledge_note, resolved_by, "
        "resolved_at, resolve_note)",
        "events",
    ),
    ("UPDATE (event_id, event_severity, clear_since)", "rule_states"),
    ("INSERT, UPDATE", "rules"),
    ("INSERT, UPDATE", "notification_templates"),
    ("UPDATE (status, next_attempt_at, max_attempts, claimed_until)", "notification_deliveries"),
)
"""The writes of the operator actions on the alerting pages: (privileges, table)."""


def ensure_readonly_role(
    engine: Engine, name: str, password: str, *, schema: str = "public"
) -> None:
    """Create (or update) the login role ``name`` that reads ``schema`` and may take the
    operator actions of the alerting pages (``OPERATOR_GRANTS``), nothing else.

    The role gets CONNECT on the engine's database, USAGE on ``schema``, SELECT on every
    table in it, and SELECT on the tables created there later by the engine's user (its
    default privileges), so a migration does not lock the dashboard out. Running it again
    only resets the password. ``engine`` must connect as the tables' owner (the user that
    runs the migrations) with the right to create roles.

    Raises:
        StoreError: ``name`` is not a plain lower-case identifier, ``password`` is empty, or
            the server refused (e.g. the engine's user may not create roles).
        StoreUnavailableError: PostgreSQL could not be reached.
    """
    if not _ROLE_NAME.match(name):
        raise StoreError(f"role name must be a lower-case identifier, got {name!r}")
    if not password:
        raise StoreError("the read-only role needs a password")
    role, where = sql.Identifier(name), sql.Identifier(schema)
    try:
        with engine.begin() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": name}
            ).first()
            verb = sql.SQL("ALTER") if exists else sql.SQL("CREATE")
            database = sql.Identifier(
                str(conn.execute(text("SELECT current_database()")).scalar_one())
            )
            statements = (
                sql.SQL("{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                    verb, role, sql.Literal(password)
                ),
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, role),
                sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(where, role),
                sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(where, role),
                sql.SQL(
                    "ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}"
                ).format(where, role),
            )
            for statement in statements:
                _execute(conn, statement)
            for privileges, table in OPERATOR_GRANTS:
                _execute(
                    conn,
                    sql.SQL("GRANT {} ON {}.{} TO {}").format(
                        sql.SQL(privileges), where, sql.Identifier(table), role
                    ),
                )
            _execute(
                conn,
                sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(
                    sql.Identifier(schema, "notification_templates_id_seq"), role
                ),
            )
    except OperationalError as exc:
        raise StoreUnavailableError(f"PostgreSQL failed creating role {name}: {exc.orig}") from exc
    except DBAPIError as exc:
        raise StoreError(f"PostgreSQL refused creating role {name}: {exc.orig}") from exc


def _execute(conn: Connection, statement: sql.Composed) -> None:
    # Role DDL takes no bind parameters: psycopg composes the quoted identifiers and the
    # password literal with the connection's own escaping, inside SQLAlchemy's transaction.
    driver = conn.connection.driver_connection
    assert driver is not None  # a live connection inside engine.begin()
    with driver.cursor() as cursor:
        cursor.execute(statement)
