"""SQLAlchemy engine for PostgreSQL through psycopg 3."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from fleetwatch.settings import PostgresSettings
from stores.errors import StoreUnavailableError


def make_engine(settings: PostgresSettings, *, pool_size: int = 5, pooled: bool = True) -> Engine:
    """An engine with a small pool; connections are checked before use after idle time.

    ``pooled=False``: a connection per use and none kept, for a process that has a pool of
    its own and needs the engine rarely (nothing to dispose of when it stops).
    """
    pooling: dict[str, Any] = (
        {"pool_size": pool_size, "pool_pre_ping": True} if pooled else {"poolclass": NullPool}
    )
    return create_engine(
        settings.sqlalchemy_url,
        connect_args={"connect_timeout": 5, "application_name": "fleetwatch"},
        **pooling,
    )


def server_version(engine: Engine) -> str:
    """The server's version string; raises StoreUnavailableError when it cannot be reached."""
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar_one())
    except OperationalError as exc:
        raise StoreUnavailableError(f"PostgreSQL unreachable: {exc.orig}") from exc
