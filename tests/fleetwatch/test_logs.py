"""Start-up logs carry what an operator needs."""

from __future__ import annotations

import logging

import pytest

from fleetwatch import logs


@pytest.mark.usefixtures("restore_root_logging")
def test_alembic_keeps_its_migrations_and_drops_its_chatter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ "Running upgrade" stays; plugin set-up and context lines are gone."""
    logs.configure("INFO")  # replaces the root's handlers: caplog's comes back
    logging.getLogger().addHandler(caplog.handler)
    caplog.set_level(logging.INFO)
    logging.getLogger("alembic.runtime.plugins").info("setup plugin alembic.autogenerate.schemas")
    migration = logging.getLogger("alembic.runtime.migration")
    migration.info("Context impl PostgresqlImpl.")
    migration.info("Will assume transactional DDL.")
    migration.info("Running upgrade 0007 -> 0008, repeats")
    assert [r.getMessage() for r in caplog.records] == ["Running upgrade 0007 -> 0008, repeats"]
