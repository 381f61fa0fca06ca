"""Bring a PostgreSQL database to the schema this code needs, and check that it is there.

Migrations run only when asked (``fleetwatch migrate``); services call ``require_current`` at
start-up and refuse to run against a database that is behind (or ahead of) the code.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import DBAPIError, OperationalError

from fleetwatch.settings import PostgresSettings
from stores.errors import SchemaError, StoreUnavailableError
from stores.postgres.engine import make_engine

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# Any constant works as long as every fleetwatch process uses the same one: it names the
# PostgreSQL advisory lock that serialises migrations of one database ("fleetwat" in ASCII).
MIGRATION_LOCK_KEY = 0x666C656574776174

# Alembic publishes the running migration through module-level proxies (alembic.op,
# alembic.context), so two threads of one process must not run it at once, even against
# different databases. Taken after the advisory lock, always in that order.
_alembic_in_use = threading.Lock()

Migration = Callable[[Config], None]


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _where(engine: Engine) -> str:
    """HOST:PORT/DB of an engine, for messages (never the credentials)."""
    url = engine.url
    port = f":{url.port}" if url.port else ""
    return f"{url.host or 'localhost'}{port}/{url.database}"


def head_revision() -> str:
    """The revision the code needs: the newest one shipped in ``migrations/versions``."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise SchemaError(f"no migration revisions found in {MIGRATIONS_DIR / 'versions'}")
    return head


def _known_revisions() -> set[str]:
    return {script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions()}


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it has never been migrated."""
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except OperationalError as exc:
        raise StoreUnavailableError(f"PostgreSQL unreachable: {exc.orig}") from exc


def require_current(engine: Engine) -> None:
    """Raise SchemaError unless the database is at exactly the revision this code needs."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    where = _where(engine)
    if current is not None and current not in _known_revisions():
        raise SchemaError(
            f"database at {where} is at revision {current}, which this fleetwatch does not "
            f"know (code needs {head}): deploy the newer fleetwatch"
        )
    raise SchemaError(
        f"database at {where} is not migrated (at revision {current or 'none'}, "
        f"code needs {head}): run `fleetwatch migrate`"
    )


def upgrade(settings: PostgresSettings, revision: str = "head") -> None:
    """Migrate the database up to ``revision``; a no-op when it is already there.

    Safe to run from several processes at once: they take turns, and the later ones find
    nothing left to do.
    """
    _run(settings, lambda config: command.upgrade(config, revision), f"upgrade to {revision}")


def downgrade(settings: PostgresSettings, revision: str) -> None:
    """Migrate the database down to ``revision`` ("base" drops everything fleetwatch made)."""
    _run(settings, lambda config: command.downgrade(config, revision), f"downgrade to {revision}")


def _run(settings: PostgresSettings, migration: Migration, what: str) -> None:
    """Run one Alembic command in a single transaction holding the migration lock.

    The lock is transaction-scoped, so it is released by the commit (or by the server when
    the process dies); DDL being transactional in PostgreSQL, a failed run leaves nothing
    half-done behind.
    """
    engine = make_engine(settings, pool_size=1)
    where = _where(engine)
    try:
        with engine.begin() as connection:
            _lock(connection, where)
            with _alembic_in_use:
                logger.info("migrating %s: %s", where, what)
                migration(_config(connection))
    except OperationalError as exc:
        raise StoreUnavailableError(f"PostgreSQL unreachable at {where}: {exc.orig}") from exc
    except DBAPIError as exc:
        raise SchemaError(f"migration of {where} ({what}) failed: {exc.orig}") from exc
    except CommandError as exc:
        raise SchemaError(f"migration of {where} ({what}) refused: {exc}") from exc
    finally:
        engine.dispose()


def _lock(connection: Connection, where: str) -> None:
    """Take the migration lock, saying so when another process holds it."""
    got_it = connection.scalar(select(func.pg_try_advisory_xact_lock(MIGRATION_LOCK_KEY)))
    if not got_it:
        logger.info("another process is migrating %s; waiting for it to finish", where)
        connection.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
