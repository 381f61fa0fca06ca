"""Alembic environment: applies the revisions in ``versions/`` to fleetwatch's PostgreSQL.

There is no alembic.ini. ``stores.postgres.migrate`` builds the Alembic config in code and hands
over an open connection (``config.attributes["connection"]``) inside a transaction that already
holds the migration lock, so every revision of one run commits or rolls back together. Used
without one (the Alembic API with a bare config) it connects by itself, taking no lock, to
``sqlalchemy.url`` from the config or else to ``FLEETWATCH_DATABASE_URL``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from fleetwatch.settings import PostgresSettings, load


def _configure_and_run(connection: Connection) -> None:
    # No target_metadata: revisions are written by hand, and with it Alembic would apply
    # schema.py's naming convention to the explicit names in the revisions a second time.
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def _run_online() -> None:
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        _configure_and_run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url") or load(PostgresSettings).sqlalchemy_url
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as own_connection:
            _configure_and_run(own_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported; run `fleetwatch migrate`")
_run_online()
