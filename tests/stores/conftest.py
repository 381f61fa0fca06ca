"""Fixtures of the store tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from influxdb_client.client.influxdb_client import InfluxDBClient

from fleetwatch.settings import InfluxSettings
from stores.influx import make_client


@pytest.fixture
def client(influx_service: InfluxSettings) -> Iterator[InfluxDBClient]:
    """A client on the test run's InfluxDB, with the operator token."""
    with make_client(influx_service) as client:
        yield client


@pytest.fixture
def org(influx_service: InfluxSettings) -> str:
    """The organisation the tests work in."""
    return influx_service.influx_org
