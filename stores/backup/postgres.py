"""PostgreSQL's part of a backup: ``pg_dump`` in directory format, put back by ``pg_restore``.

The directory format is the one pg_dump and pg_restore can both run with parallel jobs, one
table per job. The dump is one consistent snapshot of the database taken when pg_dump
starts, however long it runs and whatever ingest writes meanwhile.

Roles live outside the database (they belong to the server, and the target's may not have
them), so the restore leaves out the dump's owners and grants: the restored objects belong to
the restoring user, and ``fleetwatch migrate`` re-creates the dashboard's roles and their
grants afterwards.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from sqlalchemy import text

from fleetwatch.settings import PostgresSettings
from stores.backup.errors import BackupError
from stores.errors import StoreUnavailableError
from stores.postgres import current_revision, make_engine, server_version
from stores.postgres.errors import sql_errors

__all__ = [
    "PG_DIR",
    "PgServer",
    "PgTools",
    "clear_database",
    "describe_server",
    "dump",
    "relations_in",
    "restore_dump",
]

logger = logging.getLogger(__name__)

PG_DIR = "postgres"
"""The backup's subdirectory holding pg_dump's output."""

_STDERR_LINES = 8  # of a failing tool's complaint, enough to see why

# Schemas every database has; anything else is the application's.
_USER_SCHEMAS = """
    SELECT nspname FROM pg_namespace
     WHERE nspname NOT IN ('pg_catalog', 'information_schema')
       AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp%'
"""

_COUNT_RELATIONS = f"""
    SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname IN ({_USER_SCHEMAS}) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
"""  # noqa: S608 - two constants


@dataclass(frozen=True, slots=True)
class PgTools:
    """Where pg_dump and pg_restore are: a directory, or (None) the PATH.

    pg_dump must be of the server's major version or newer, which a system's default client
    may not be: ``bin_dir`` names another installation's (``/usr/lib/postgresql/16/bin``).
    """

    bin_dir: Path | None = None

    def path(self, tool: str) -> str:
        """The program ``tool``; raises BackupError saying how to get it when it is missing."""
        if self.bin_dir is not None:
            candidate = self.bin_dir / tool
            if os.access(candidate, os.X_OK):
                return str(candidate)
            raise BackupError(f"{tool} not found in {self.bin_dir}")
        found = shutil.which(tool)
        if found is None:
            raise BackupError(
                f"{tool} not found on the PATH: install the PostgreSQL client programs "
                "(Debian: postgresql-client) of the server's major version or newer, or name "
                "their directory with --pg-bin"
            )
        return found

    def version(self, tool: str) -> str:
        """The tool's ``--version`` line, e.g. ``pg_dump (PostgreSQL) 16.6``."""
        done = _run([self.path(tool), "--version"], os.environ.copy(), f"{tool} --version")
        return done.stdout.strip()


@dataclass(frozen=True, slots=True)
class PgServer:
    """What a backup records of the database it dumped."""

    version: str
    database: str
    schema_revision: str | None


def describe_server(settings: PostgresSettings) -> PgServer:
    """The server's version, the database's name and Alembic revision.

    Raises StoreUnavailableError when PostgreSQL does not answer, so nothing is started
    against a server that is down.
    """
    engine = make_engine(settings, pooled=False)
    try:
        return PgServer(
            version=server_version(engine),
            database=engine.url.database or "",
            schema_revision=current_revision(engine),
        )
    finally:
        engine.dispose()


def dump(
    settings: PostgresSettings,
    target: Path,
    *,
    tools: PgTools,
    jobs: int,
    snapshot: str | None = None,
) -> None:
    """Dump the database into the new directory ``target`` with ``jobs`` parallel workers.

    ``snapshot`` dumps the database as a transaction that exported it with
    ``pg_export_snapshot()`` sees it (that transaction must stay open until the dump ends):
    a caller can then read exactly what the backup holds.
    """
    command = [
        tools.path("pg_dump"),
        "--format=directory",
        f"--jobs={jobs}",
        f"--file={target}",
        "--no-password",
    ]
    if snapshot is not None:
        command.append(f"--snapshot={snapshot}")
    began = time.perf_counter()
    _run([*command, f"--dbname={_url(settings)}"], _env(settings), "pg_dump")
    logger.info("pg_dump: %s in %.1f s", target, time.perf_counter() - began)


def restore_dump(settings: PostgresSettings, source: Path, *, tools: PgTools, jobs: int) -> None:
    """Load the dump in ``source`` into the (empty) database with ``jobs`` parallel workers.

    Stops at the first error: a restore that half failed must not look done.
    """
    command = [
        tools.path("pg_restore"),
        f"--jobs={jobs}",
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--no-password",
        f"--dbname={_url(settings)}",
        str(source),
    ]
    began = time.perf_counter()
    _run(command, _env(settings), "pg_restore")
    logger.info("pg_restore: %s in %.1f s", source, time.perf_counter() - began)


def relations_in(settings: PostgresSettings) -> int:
    """How many tables, views and sequences the database holds outside the system schemas."""
    engine = make_engine(settings, pooled=False)
    try:
        with sql_errors("counting the database's tables"), engine.connect() as conn:
            found = conn.execute(text(_COUNT_RELATIONS)).scalar_one()
        return int(found)
    finally:
        engine.dispose()


def clear_database(settings: PostgresSettings) -> None:
    """Drop every schema of the database but the system's, then give it an empty ``public``.

    Dropping whole schemas (rather than what the dump names) also removes what a newer
    fleetwatch may have added, so the restored database is exactly the backup's.
    """
    engine = make_engine(settings, pooled=False)
    quote = engine.dialect.identifier_preparer.quote
    try:
        with sql_errors("emptying the database"), engine.begin() as conn:
            schemas = [str(row[0]) for row in conn.execute(text(_USER_SCHEMAS))]
            for schema in schemas:
                conn.execute(text(f"DROP SCHEMA {quote(schema)} CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()
    logger.info("emptied the database: dropped schemas %s", ", ".join(schemas) or "(none)")


def _url(settings: PostgresSettings) -> str:
    """The connection URL without its password, which travels in PGPASSWORD instead: the
    command line of a running process is visible to every user of the machine."""
    dsn = settings.database_url
    host = dsn.hosts()[0]
    user = f"{host['username']}@" if host["username"] else ""
    port = f":{host['port']}" if host["port"] else ""
    query = f"?{dsn.query}" if dsn.query else ""
    return f"postgresql://{user}{quote(host['host'] or '', safe='')}{port}{dsn.path or ''}{query}"


def _env(settings: PostgresSettings) -> dict[str, str]:
    env = os.environ.copy()
    password = settings.database_url.hosts()[0]["password"]
    if password:
        env["PGPASSWORD"] = unquote(password)
    env.setdefault("PGCONNECT_TIMEOUT", "10")
    env["PGAPPNAME"] = "fleetwatch-backup"
    return env


def _run(command: list[str], env: dict[str, str], what: str) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL client program; its complaint becomes the error's message."""
    try:
        done = subprocess.run(  # noqa: S603 - a fixed program, arguments from settings
            command, env=env, capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise BackupError(f"{what} could not be started: {exc}") from exc
    if done.returncode != 0:
        complaint = "\n".join(done.stderr.strip().splitlines()[-_STDERR_LINES:])
        unreachable = "could not connect" in complaint or "connection to server" in complaint
        error = StoreUnavailableError if unreachable else BackupError
        raise error(f"{what} failed (exit status {done.returncode}):\n{complaint}")
    return done
