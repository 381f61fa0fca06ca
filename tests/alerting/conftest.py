"""Fixtures of the alerting tests: the ingest service, rules and templates, a worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest

from alerting.book import template_to_row
from alerting.manage import save_rule
from alerting.rules import Rule
from alerting.templates import Template
from alerting.worker import DeliveryWorker
from fleetwatch.settings import AlertSettings, InfluxSettings, MqttSettings, PostgresSettings
from ingest.service import IngestService
from stores.postgres import alerting_store as store
from tests.ingest.conftest import (  # noqa: F401 - fixtures shared with the ingest tests
    db,
    device,
    ingest_client_id,
    migrated_pg,
    running_ingest,
)

SECRET = "test-webhook-secret"


def alert_settings(**changes: Any) -> AlertSettings:  # noqa: ANN401
    """Settings for tests: quick polling, a short lease, the webhook secret."""
    values: dict[str, Any] = {
        "webhook_secret": SECRET,
        "notify_poll_s": 0.2,
        "notify_lease_s": 5.0,
        "public_url": "http://dashboard.test/events",
    }
    return AlertSettings(**{**values, **changes})


def add_template(conn: psycopg.Connection[Any], template: Template) -> None:
    store.save_template(conn, template_to_row(template), "test", replace=True)


def add_rule(conn: psycopg.Connection[Any], rule: Rule) -> Rule:
    return save_rule(conn, rule, "test")


LINK = "http://dashboard.test/events"


@pytest.fixture
async def ingest(
    migrated_pg: PostgresSettings,  # noqa: F811
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    ingest_client_id: str,  # noqa: F811
) -> AsyncIterator[IngestService]:
    """A running ingest service whose notifications link to the dashboard at LINK."""
    async with running_ingest(
        migrated_pg, mqtt_settings, influx_settings, ingest_client_id,
        event_link=LINK, rules_sweep_s=0.2,
    ) as service:  # fmt: skip
        yield service


RunWorker = Callable[..., "asyncio.Task[None]"]


@pytest.fixture
async def run_worker(migrated_pg: PostgresSettings) -> AsyncIterator[RunWorker]:  # noqa: F811
    """Starts delivery workers in this process; stops them at the end."""
    running: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    def start(settings: AlertSettings | None = None, **kwargs: Any) -> asyncio.Task[None]:  # noqa: ANN401
        worker = DeliveryWorker(
            str(migrated_pg.database_url), settings or alert_settings(), **kwargs
        )
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        running.append((stop, task))
        return task

    yield start
    for stop, task in running:
        stop.set()
        async with asyncio.timeout(20):
            await task
