"""Fixtures for reports loaded from the real stores."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from influxdb_client.client.influxdb_client import InfluxDBClient
from sqlalchemy import Engine

from fleetwatch.settings import InfluxSettings, PostgresSettings
from stores.influx import make_client
from stores.postgres import make_engine
from stores.postgres.migrate import upgrade


@pytest.fixture
def migrated_pg(pg_settings: PostgresSettings) -> PostgresSettings:
    """A fresh database at the current schema revision."""
    upgrade(pg_settings)
    return pg_settings


@pytest.fixture
def engine(migrated_pg: PostgresSettings) -> Iterator[Engine]:
    """An engine on the test's migrated database."""
    engine = make_engine(migrated_pg, pool_size=1)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def influx_client(influx_settings: InfluxSettings) -> Iterator[InfluxDBClient]:
    """A client on the test run's InfluxDB (the test's bucket is influx_settings')."""
    with make_client(influx_settings) as client:
        yield client
