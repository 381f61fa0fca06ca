"""Migrations bring a real PostgreSQL to the revision the code needs, once, and safely."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from pydantic import PostgresDsn
from sqlalchemy import Engine, inspect, text
from sqlalchemy.dialects.postgresql.base import PGInspector

from fleetwatch.cli import main
from fleetwatch.settings import InfluxSettings, PostgresSettings
from stores.errors import SchemaError
from stores.postgres import (
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    require_current,
    upgrade,
)
from stores.postgres.migrate import MIGRATION_LOCK_KEY, MIGRATIONS_DIR
from tests.conftest import unique_name
from tests.support.influx_env import own_influx_env

# Running the CLI installs root-logger handlers: undo them after each test.
pytestmark = pytest.mark.usefixtures("restore_root_logging")

JOIN_TIMEOUT_S = 60.0


@pytest.fixture
def engine(pg_settings: PostgresSettings) -> Iterator[Engine]:
    """An engine on the test's fresh, empty database."""
    engine = make_engine(pg_settings, pool_size=1)
    yield engine
    engine.dispose()


def _oid(engine: Engine, table: str) -> int:
    """The table's catalog id: a table dropped and created again gets a new one."""
    with engine.connect() as conn:
        query = text("SELECT oid FROM pg_class WHERE relname = :name")
        return int(conn.execute(query, {"name": table}).scalar_one())


def test_upgrade_reaches_head(pg_settings: PostgresSettings, engine: Engine) -> None:
    """A fresh database migrated to head reports the code's head revision."""
    assert current_revision(engine) is None
    upgrade(pg_settings)
    assert current_revision(engine) == head_revision() == "0012"


def test_upgrade_again_is_a_no_op(pg_settings: PostgresSettings, engine: Engine) -> None:
    """A second upgrade keeps the revision, the tables (same oids) and their rows."""
    upgrade(pg_settings)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO devices (mac_address) VALUES ('aa:bb:cc:dd:ee:01')"))
    devices_oid = _oid(engine, "devices")
    upgrade(pg_settings)
    assert current_revision(engine) == head_revision()
    assert _oid(engine, "devices") == devices_oid
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM devices")).scalar_one() == 1


def test_require_current_refuses_unmigrated_database(engine: Engine) -> None:
    """An empty database is refused with the database named and the command to run."""
    database = engine.url.database
    with pytest.raises(SchemaError, match=r"run `fleetwatch migrate`") as raised:
        require_current(engine)
    assert f"127.0.0.1:5432/{database}" in str(raised.value)
    assert "at revision none, code needs 0012" in str(raised.value)


def test_require_current_passes_after_upgrade(
    pg_settings: PostgresSettings, engine: Engine
) -> None:
    """Once migrated, the start-up check is silent."""
    upgrade(pg_settings)
    require_current(engine)


def test_require_current_refuses_unknown_newer_revision(
    pg_settings: PostgresSettings, engine: Engine
) -> None:
    """A database migrated by a newer fleetwatch is refused rather than used."""
    upgrade(pg_settings)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaError, match=r"revision 9999, which this fleetwatch does not know"):
        require_current(engine)


def test_downgrade_to_base_then_upgrade_again(
    pg_settings: PostgresSettings, engine: Engine
) -> None:
    """Downgrading to base leaves no table, type or function behind; upgrading rebuilds all."""
    upgrade(pg_settings)
    downgrade(pg_settings, "base")
    assert current_revision(engine) is None
    inspector = inspect(engine)
    assert isinstance(inspector, PGInspector)
    assert set(inspector.get_table_names()) <= {"alembic_version"}
    assert inspector.get_enums() == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT to_regproc('set_updated_at')")).scalar_one() is None
    upgrade(pg_settings)
    assert current_revision(engine) == head_revision()


def test_upgrade_to_unknown_revision_is_refused(
    pg_settings: PostgresSettings, engine: Engine
) -> None:
    """Asking for a revision the code does not ship raises SchemaError and changes nothing."""
    with pytest.raises(SchemaError, match=r"Can't locate revision identified by '9999'"):
        upgrade(pg_settings, "9999")
    assert current_revision(engine) is None


def test_alembic_env_alone_reads_the_database_url_from_settings(
    pg_settings: PostgresSettings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alembic's own API with a bare config migrates the FLEETWATCH_DATABASE_URL database."""
    monkeypatch.setenv("FLEETWATCH_DATABASE_URL", str(pg_settings.database_url))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    command.upgrade(config, "head")
    assert current_revision(engine) == head_revision()


def test_concurrent_upgrades_both_succeed(pg_settings: PostgresSettings, engine: Engine) -> None:
    """Two threads upgrading one fresh database at the same moment both succeed."""
    start = threading.Barrier(2, timeout=JOIN_TIMEOUT_S)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            start.wait()
            upgrade(pg_settings)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT_S)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert current_revision(engine) == head_revision()


class _Signal(logging.Handler):
    """Sets an event when a record containing ``needle`` is logged."""

    def __init__(self, needle: str) -> None:
        super().__init__(logging.INFO)
        self.needle = needle
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.needle in record.getMessage():
            self.seen.set()


def test_upgrade_waits_for_the_lock_holder(
    pg_settings: PostgresSettings, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """While another session holds the migration lock, upgrade waits and changes nothing."""
    caplog.set_level(logging.INFO, logger="stores.postgres.migrate")
    signal = _Signal("waiting for it to finish")
    logging.getLogger("stores.postgres.migrate").addHandler(signal)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            upgrade(pg_settings)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread below
            errors.append(exc)

    worker = threading.Thread(target=run)
    try:
        with psycopg.connect(str(pg_settings.database_url), autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
            worker.start()
            assert signal.seen.wait(JOIN_TIMEOUT_S), "upgrade never reported waiting"
            # The lock is still ours: whatever the worker is doing, it cannot have migrated.
            assert current_revision(engine) is None
            holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
        worker.join(JOIN_TIMEOUT_S)
    finally:
        logging.getLogger("stores.postgres.migrate").removeHandler(signal)
    assert not worker.is_alive()
    assert errors == []
    assert current_revision(engine) == head_revision()


@pytest.fixture
def influx_env(influx_service: InfluxSettings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """migrate also prepares InfluxDB: give it buckets of the test's own, removed after."""
    with own_influx_env(influx_service, monkeypatch, unique_name("migrate")):
        yield


@pytest.mark.usefixtures("restore_root_logging", "influx_env")
def test_cli_migrate_upgrades_and_reports(
    pg_settings: PostgresSettings,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """'fleetwatch migrate' migrates the configured database and prints the revision reached."""
    monkeypatch.setenv("FLEETWATCH_DATABASE_URL", str(pg_settings.database_url))
    assert main(["migrate"]) == 0
    assert "migrated from revision none to 0012" in capsys.readouterr().out
    assert current_revision(engine) == "0012"
    assert main(["migrate"]) == 0
    assert "already at revision 0012" in capsys.readouterr().out


@pytest.mark.usefixtures("restore_root_logging")
def test_cli_migrate_fails_clearly_when_unreachable(
    pg_settings: PostgresSettings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With PostgreSQL unreachable, 'fleetwatch migrate' exits 1 and says why."""
    host = pg_settings.database_url.hosts()[0]
    unreachable = PostgresDsn(f"postgresql://{host['username']}@127.0.0.1:1/nowhere")
    monkeypatch.setenv("FLEETWATCH_DATABASE_URL", str(unreachable))
    assert main(["migrate"]) == 1
    assert "PostgreSQL unreachable" in capsys.readouterr().err
