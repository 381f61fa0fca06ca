"""SQLAlchemy engine for PostgreSQL through psycopg 3."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from fleetwatch.settings import PostgresSettings
from stores.errors import StoreUnavailableError


def make_engine(settings: PostgresSettings, *, pool_size: int = 5) -> Engine:
    """An engine with a small pool; connections are checked before use after idle time."""
    return create_engine(
        settings.sqlalchemy_url,
        pool_size=pool_size,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 5, "application_name": "fleetwatch"},
    )


def server_version(engine: Engine) -> str:
    """The server's version string; raises StoreUnavailableError when it cannot be reached."""
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar_one())
    except OperationalError as exc:
        raise StoreUnavailableError(f"PostgreSQL unreachable: {exc.orig}") from exc
