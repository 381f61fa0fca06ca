"""InfluxDB settings in the environment naming buckets of one test's own, for CLI tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from influxdb_client.client.influxdb_client import InfluxDBClient

from fleetwatch.settings import InfluxSettings
from stores.influx import make_client
from stores.influx.buckets import find_bucket
from stores.influx.tasks import find_tasks, task_name


@dataclass(frozen=True, slots=True)
class InfluxEnv:
    """A client on the test InfluxDB and the bucket names the environment now gives."""

    client: InfluxDBClient
    org: str
    raw_bucket: str
    hourly_bucket: str


@contextmanager
def own_influx_env(
    influx: InfluxSettings, monkeypatch: pytest.MonkeyPatch, prefix: str
) -> Iterator[InfluxEnv]:
    """Point FLEETWATCH_INFLUX_* at ``influx`` with raw and hourly buckets named after
    ``prefix``; on exit delete those buckets and the downsampling task, whoever made them."""
    raw, hourly = f"{prefix}_raw", f"{prefix}_hourly"
    monkeypatch.setenv("FLEETWATCH_INFLUX_URL", influx.influx_url)
    monkeypatch.setenv("FLEETWATCH_INFLUX_TOKEN", influx.influx_token.get_secret_value())
    monkeypatch.setenv("FLEETWATCH_INFLUX_ORG", influx.influx_org)
    monkeypatch.setenv("FLEETWATCH_INFLUX_BUCKET", raw)
    monkeypatch.setenv("FLEETWATCH_INFLUX_HOURLY_BUCKET", hourly)
    org = influx.influx_org
    with make_client(influx) as client:
        try:
            yield InfluxEnv(client, org, raw, hourly)
        finally:
            for task in find_tasks(client, org, task_name(hourly)):
                client.tasks_api().delete_task(task.id)
            for name in (raw, hourly):
                bucket = find_bucket(client, name, org)
                if bucket is not None:
                    client.buckets_api().delete_bucket(bucket)
