"""Events are raised once: two ingest processes and two delivery workers give one event and
one delivery per recipient; a value flapping at its threshold gives one event."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pytest

from alerting.recipients import Recipient
from alerting.rules import Action, Rule, RuleOperator
from alerting.templates import Template
from fleetwatch.settings import InfluxSettings, MqttSettings, PostgresSettings
from ingest.contract import TopicKind
from ingest.service import IngestService
from tests.alerting.conftest import RunWorker, add_rule, add_template, alert_settings
from tests.ingest.conftest import forget_session, start_ingest
from tests.support.devices import FakePanel, Publisher
from tests.support.receivers import http_receiver

PANELS = [FakePanel(n) for n in range(20, 25)]


def _count(db: psycopg.Connection[Any], query: str) -> int:
    row = db.execute(query).fetchone()
    assert row is not None
    return int(row[0])


async def test_two_ingest_processes_and_two_workers_notify_once(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    device: Publisher,
    db: psycopg.Connection[Any],
    run_worker: RunWorker,
) -> None:
    """Both ingest processes receive every message (two subscriptions); each panel's panic
    press still makes one event and one delivery per recipient, each received once."""
    with http_receiver() as first, http_receiver() as second:
        add_template(db, Template(name="ops", message="{message}", recipients=(
            Recipient("webhook", first.url), Recipient("webhook", second.url))))  # fmt: skip
        add_rule(db, Rule(name="panic", kind="panel", metric="alarm_panic1",
                          operator=RuleOperator.EQ, critical=1.0,
                          actions=(Action(template="ops"),)))  # fmt: skip
        services = [
            await start_ingest(migrated_pg, mqtt_settings, influx_settings,
                               f"ingest-{uuid.uuid4().hex[:8]}")
            for _ in range(2)
        ]  # fmt: skip
        run_worker(alert_settings(), channels=["webhook"])
        run_worker(alert_settings(), channels=["webhook"])
        try:
            for panel in PANELS:
                await device.send(panel, TopicKind.STATUS, panel.status())
            for panel in PANELS:
                await device.send(panel, TopicKind.ALARM, panel.alarm(1))
            for service, _, _ in services:
                await service.wait_processed(2 * len(PANELS), timeout_s=20)
            await asyncio.to_thread(first.wait_for, len(PANELS))
            await asyncio.to_thread(second.wait_for, len(PANELS))
            await asyncio.sleep(1.0)  # time for a duplicate to show up, if there were one
        finally:
            for service, stop, task in services:
                stop.set()
                await task
                await forget_session(mqtt_settings, service._options.client_id or "")
    assert _count(db, "SELECT count(*) FROM events") == len(PANELS)
    assert _count(db, "SELECT count(*) FROM notification_deliveries") == 2 * len(PANELS)
    assert _count(db, "SELECT count(*) FROM notification_deliveries WHERE status = 'sent'") == (
        2 * len(PANELS)
    )
    assert len(first.received) == len(second.received) == len(PANELS)
    ids = {r.headers["X-Fleetwatch-Delivery"] for r in [*first.received, *second.received]}
    assert len(ids) == 2 * len(PANELS)


async def test_a_temperature_flapping_at_its_threshold_raises_one_event(
    ingest: IngestService,
    device: Publisher,
    db: psycopg.Connection[Any],
) -> None:
    """Heartbeats alternating 29.8 / 30.2 °C against gt 30, clearing at 29: one event, still
    open (each received value is evaluated, not only the CDC's points)."""
    panel = PANELS[0]
    add_rule(db, Rule(name="warm", kind="panel", metric="temperature", operator=RuleOperator.GT,
                      warning=30.0, clear=29.0, cooldown_minutes=0.0))  # fmt: skip
    await device.send(panel, TopicKind.STATUS, panel.status())
    temperatures = [29.8 if n % 2 else 30.2 for n in range(40)]
    for temperature in temperatures:
        await device.send(panel, TopicKind.HEARTBEAT, panel.heartbeat(temperature=temperature))
    await ingest.wait_processed(1 + len(temperatures))
    assert _count(db, "SELECT count(*) FROM events") == 1
    assert _count(db, "SELECT count(*) FROM events WHERE status = 'new'") == 1
    value = db.execute("SELECT value, severity FROM events").fetchone()
    assert value == (pytest.approx(30.2), "warning")  # a float32 on the wire
