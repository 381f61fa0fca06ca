"""Fixtures giving every test real services and state of its own."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from typing import TypeVar

import psycopg
import pytest
from influxdb_client import InfluxDBClient
from influxdb_client.domain.bucket import Bucket
from pydantic import PostgresDsn

from fleetwatch.settings import InfluxSettings, MqttSettings, PostgresSettings
from stores.influx import make_client
from tests.services import (
    ServiceUnavailableError,
    provide_influx,
    provide_mqtt,
    provide_postgres,
)

SettingsT = TypeVar("SettingsT")


def _service(provider: Callable[[], AbstractContextManager[SettingsT]]) -> Iterator[SettingsT]:
    """Enter a service provider, turning its absence into a test failure that says why."""
    failure = None
    with ExitStack() as stack:
        try:
            settings = stack.enter_context(provider())
        except ServiceUnavailableError as exc:
            failure = str(exc)
        else:
            yield settings
    if failure:
        pytest.fail(failure, pytrace=False)


@pytest.fixture(scope="session")
def postgres_service() -> Iterator[PostgresSettings]:
    """The real PostgreSQL of this test run (administrative database)."""
    yield from _service(provide_postgres)


@pytest.fixture(scope="session")
def mqtt_service() -> Iterator[MqttSettings]:
    """The real MQTT broker of this test run."""
    yield from _service(provide_mqtt)


@pytest.fixture(scope="session")
def influx_service() -> Iterator[InfluxSettings]:
    """The real InfluxDB of this test run (operator token)."""
    yield from _service(provide_influx)


def unique_name(kind: str) -> str:
    """A short name nobody else in this run uses."""
    return f"t_{kind}_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def pg_settings(postgres_service: PostgresSettings) -> Iterator[PostgresSettings]:
    """Settings pointing at a fresh, empty database dropped after the test."""
    admin_url = str(postgres_service.database_url)
    name = unique_name("db")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = postgres_service.database_url
    host = base.hosts()[0]
    url = f"postgresql://{host['username']}:{host['password']}@{host['host']}:{host['port']}/{name}"
    try:
        yield PostgresSettings(database_url=PostgresDsn(url))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def mqtt_settings(mqtt_service: MqttSettings) -> MqttSettings:
    """Broker settings with a topic prefix of the test's own."""
    return mqtt_service.model_copy(update={"topic_prefix": unique_name("fleet")})


@pytest.fixture
def influx_settings(influx_service: InfluxSettings) -> Iterator[InfluxSettings]:
    """InfluxDB settings naming a fresh bucket deleted after the test."""
    name = unique_name("bucket")
    with make_client(influx_service) as client:
        bucket = _create_bucket(client, name, influx_service.influx_org)
        try:
            yield influx_service.model_copy(update={"influx_bucket": name})
        finally:
            client.buckets_api().delete_bucket(bucket)


def _create_bucket(client: InfluxDBClient, name: str, org: str) -> Bucket:
    return client.buckets_api().create_bucket(bucket_name=name, org=org)


@pytest.fixture
def restore_root_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo the root-logger set-up that running the CLI installs."""
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
