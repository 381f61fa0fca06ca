"""The PostgreSQL layer talks to a real server."""

from __future__ import annotations

from sqlalchemy import text

from fleetwatch.settings import PostgresSettings
from stores.postgres import make_engine, server_version


def test_row_written_is_read_back(pg_settings: PostgresSettings) -> None:
    """A row inserted through the engine comes back unchanged from a new connection."""
    engine = make_engine(pg_settings)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE probe (mac macaddr PRIMARY KEY, temp real)"))
            conn.execute(
                text("INSERT INTO probe VALUES (:mac, :temp)"),
                {"mac": "aa:bb:cc:dd:ee:01", "temp": 21.5},
            )
        with engine.connect() as conn:
            row = conn.execute(text("SELECT mac::text, temp FROM probe")).one()
    finally:
        engine.dispose()
    assert row == ("aa:bb:cc:dd:ee:01", 21.5)


def test_server_version_names_postgres(pg_settings: PostgresSettings) -> None:
    """The version probe reports a real server version."""
    engine = make_engine(pg_settings)
    try:
        version = server_version(engine)
    finally:
        engine.dispose()
    assert int(version.split(".")[0]) >= 14
