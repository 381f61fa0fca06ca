"""Fixtures of the command-line tests."""

from __future__ import annotations

import pytest

from fleetwatch.settings import PostgresSettings


@pytest.fixture
def pg_env(pg_settings: PostgresSettings, monkeypatch: pytest.MonkeyPatch) -> PostgresSettings:
    """FLEETWATCH_DATABASE_URL pointing at the test's own database."""
    monkeypatch.setenv("FLEETWATCH_DATABASE_URL", str(pg_settings.database_url))
    return pg_settings
