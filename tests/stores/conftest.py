"""Fixtures of the store tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from influxdb_client.client.influxdb_client import InfluxDBClient

from fleetwatch.settings import InfluxSettings
from stores.influx import ensure_bucket, make_client
from stores.influx.buckets import find_bucket
from stores.influx.tasks import find_tasks, task_name
from tests.conftest import unique_name

NewBucket = Callable[[int], str]


@pytest.fixture
def client(influx_service: InfluxSettings) -> Iterator[InfluxDBClient]:
    """A client on the test run's InfluxDB, with the operator token."""
    with make_client(influx_service) as client:
        yield client


@pytest.fixture
def org(influx_service: InfluxSettings) -> str:
    """The organisation the tests work in."""
    return influx_service.influx_org


@pytest.fixture
def new_bucket(client: InfluxDBClient, org: str) -> Iterator[NewBucket]:
    """Makes buckets of the test's own (retention in days); deletes them and their tasks."""
    names: list[str] = []

    def make(retention_days: int) -> str:
        name = unique_name("bucket")
        names.append(name)
        ensure_bucket(client, name, org, retention_days)
        return name

    yield make
    for name in names:
        for task in find_tasks(client, org, task_name(name)):
            client.tasks_api().delete_task(task.id)
        bucket = find_bucket(client, name, org)
        if bucket is not None:
            client.buckets_api().delete_bucket(bucket)
