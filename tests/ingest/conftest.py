"""Fixtures running the real ingest service against the test's own services."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest

from fleetwatch.settings import InfluxSettings, MqttSettings, PostgresSettings, RetentionSettings
from ingest.broker import make_client
from ingest.service import IngestOptions, IngestService
from ingest.transports import Transport
from stores.postgres.migrate import upgrade
from tests.support.devices import Publisher


@pytest.fixture
def migrated_pg(pg_settings: PostgresSettings) -> PostgresSettings:
    """A fresh database at the current schema revision."""
    upgrade(pg_settings)
    return pg_settings


@pytest.fixture
def db(migrated_pg: PostgresSettings) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection for reading what ingest wrote."""
    with psycopg.connect(str(migrated_pg.database_url), autocommit=True) as conn:
        yield conn


async def start_ingest(
    pg: PostgresSettings,
    mqtt: MqttSettings,
    influx: InfluxSettings,
    client_id: str,
    retention: RetentionSettings | None = None,
    *,
    transports: Sequence[Transport] = (),
    **options: Any,  # noqa: ANN401 - IngestOptions fields
) -> tuple[IngestService, asyncio.Event, asyncio.Task[None]]:
    """Start an ingest service (with ``transports`` besides MQTT) and wait until every
    transport is connected."""
    opts = IngestOptions(client_id=client_id, **{"batch_wait_s": 0.02, **options})
    service = IngestService(pg, mqtt, influx, opts, retention, transports=transports)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    connected = asyncio.create_task(service.connected.wait())
    async with asyncio.timeout(20):
        await asyncio.wait({task, connected}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # surfaces the start-up error
    return service, stop, task


async def forget_session(mqtt: MqttSettings, client_id: str) -> None:
    """Drop the broker's persistent session of ``client_id`` (tests must not leave any)."""
    async with make_client(mqtt, client_id=client_id, clean_session=True):
        pass


@pytest.fixture
def ingest_client_id() -> str:
    return f"ingest-{uuid.uuid4().hex[:10]}"


@asynccontextmanager
async def running_ingest(
    pg: PostgresSettings,
    mqtt: MqttSettings,
    influx: InfluxSettings,
    client_id: str,
    *,
    keep_session: bool = False,
    **options: Any,  # noqa: ANN401 - IngestOptions fields
) -> AsyncIterator[IngestService]:
    """An ingest service while the block runs; stopped after it, and its broker session
    dropped unless ``keep_session`` (a restart test's next service takes it over)."""
    service, stop, task = await start_ingest(pg, mqtt, influx, client_id, **options)
    try:
        yield service
    finally:
        stop.set()
        async with asyncio.timeout(20):
            await task
        if not keep_session:
            await forget_session(mqtt, client_id)


@pytest.fixture
async def ingest(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    ingest_client_id: str,
) -> AsyncIterator[IngestService]:
    """A running ingest service on the test's database, bucket and topic prefix."""
    async with running_ingest(
        migrated_pg, mqtt_settings, influx_settings, ingest_client_id
    ) as service:
        yield service


@pytest.fixture
async def device(mqtt_settings: MqttSettings) -> AsyncIterator[Publisher]:
    """A connected publisher playing the devices."""
    async with make_client(mqtt_settings) as client:
        yield Publisher(client, mqtt_settings.topic_prefix)
