"""Restarts, redeliveries, a backlog while down and an InfluxDB outage lose and double nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest

from fleetwatch.settings import InfluxSettings, MqttSettings, PostgresSettings
from ingest.contract import TopicKind, pb
from ingest.service import IngestService
from tests.ingest.conftest import forget_session, running_ingest
from tests.ingest.test_ingest_flows import one
from tests.support.devices import FakePanel, Publisher, now_ms
from tests.support.outbox import outbox_drained, outbox_size
from tests.support.stored import stored_points

PANEL = FakePanel(7)
UNREACHABLE_INFLUX = "http://127.0.0.1:9"  # discard port: nothing listens
Services = tuple[PostgresSettings, MqttSettings, InfluxSettings, str]


@pytest.fixture
async def session_id(mqtt_settings: MqttSettings) -> AsyncIterator[str]:
    """A client id for ingest's persistent session, dropped from the broker after the test."""
    client_id = f"ingest-{uuid.uuid4().hex[:10]}"
    yield client_id
    await forget_session(mqtt_settings, client_id)


@asynccontextmanager
async def running(
    pg: PostgresSettings,
    mqtt: MqttSettings,
    influx: InfluxSettings,
    client_id: str,
    **options: Any,  # noqa: ANN401 - IngestOptions fields
) -> AsyncIterator[IngestService]:
    """An ingest service for the block; stopped after it, its broker session kept."""
    async with running_ingest(pg, mqtt, influx, client_id, keep_session=True, **options) as service:
        yield service
    assert service.failure is None


def points(influx: InfluxSettings, measurement: str) -> list[dict[str, Any]]:
    return stored_points(influx, measurement)


async def test_restart_seeds_cdc_state_without_flood_or_gap(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    session_id: str,
    device: Publisher,
    db: psycopg.Connection[Any],
) -> None:
    """After a restart an unchanged heartbeat writes no point and a drift past a threshold does."""
    services: Services = (migrated_pg, mqtt_settings, influx_settings, session_id)
    async with running(*services) as first:
        await device.send(PANEL, TopicKind.STATUS, PANEL.status())
        stamp = now_ms()
        beat = PANEL.heartbeat(temperature=21.0, timestamp=stamp)
        await device.send(PANEL, TopicKind.HEARTBEAT, beat)
        await first.wait_processed(2)
        # 0.3 from the written 21.0: not written (and in a later batch)
        last = PANEL.heartbeat(temperature=21.3, timestamp=stamp + 100)
        await device.send(PANEL, TopicKind.HEARTBEAT, last)
        await first.wait_processed(3)
        assert first.pipeline.totals.points == 1
    # The unwritten 21.3 moved the redelivery guard (kept in the status row), not the stored
    # reference, which only a batch that wrote a point rewrites.
    guard, reference = one(
        db,
        "SELECT s.last_device_ts, c.last_device_ts FROM device_status s "
        "JOIN heartbeat_cdc_state c USING (device_id)",
    )
    assert guard > reference

    async with running(*services) as second:
        await device.send(PANEL, TopicKind.HEARTBEAT, last)  # the same bytes, redelivered
        # Device times stay explicit and increasing: a restart can take less than 100 ms.
        newer = PANEL.heartbeat(temperature=21.3, timestamp=stamp + 200)
        await device.send(PANEL, TopicKind.HEARTBEAT, newer)
        await second.wait_processed(2)
        assert (second.pipeline.totals.duplicates, second.pipeline.totals.points) == (1, 0)
        # 0.2 from the last reading but 0.5 from the last *written* one: the seeded reference.
        drifted = PANEL.heartbeat(temperature=21.5, timestamp=stamp + 300)
        await device.send(PANEL, TopicKind.HEARTBEAT, drifted)
        await second.wait_processed(3)
        assert second.pipeline.totals.points == 1

    history = points(influx_settings, "heartbeat")
    assert [(p["temperature"], p["change_type"]) for p in history] == [
        (21.0, "PERIODIC"),
        (21.5, "SENSOR_DATA"),
    ]
    assert json.loads(history[1]["changes"])["temperature"]["old"] == 21.0
    assert one(db, "SELECT sum(received), sum(written) FROM heartbeat_counts") == (4, 2)


async def test_redelivered_bytes_take_effect_once(
    ingest: IngestService,
    device: Publisher,
    db: psycopg.Connection[Any],
    influx_settings: InfluxSettings,
) -> None:
    """The same heartbeat and alarm bytes delivered three times count, store and write once."""
    heartbeat = PANEL.heartbeat().SerializeToString()
    alarm = PANEL.alarm(1).SerializeToString()
    await device.send(PANEL, TopicKind.STATUS, PANEL.status())
    for _ in range(2):  # back to back: likely one batch
        await device.send(PANEL, TopicKind.HEARTBEAT, heartbeat)
        await device.send(PANEL, TopicKind.ALARM, alarm)
    await ingest.wait_processed(5)
    await device.send(PANEL, TopicKind.HEARTBEAT, heartbeat)  # a later batch
    await device.send(PANEL, TopicKind.ALARM, alarm)
    await ingest.wait_processed(7)

    totals = ingest.pipeline.totals
    # A redelivery is accepted (and acknowledged) but changes nothing: it counts in both.
    assert (totals.accepted, totals.duplicates, totals.points) == (7, 4, 2)
    assert not totals.dead_letters
    assert one(db, "SELECT count(*) FROM dead_letters") == (0,)
    assert one(db, "SELECT sum(received), sum(written) FROM heartbeat_counts") == (1, 1)
    assert one(db, "SELECT count(*), min(sequence) FROM alarm_events") == (1, 1)
    assert one(db, "SELECT count(*) FROM alarm_sequences") == (1,)
    assert one(db, "SELECT panic1_count FROM device_status") == (1,)
    assert len(points(influx_settings, "heartbeat")) == 1
    assert len(points(influx_settings, "alarm")) == 1


async def register_and_stop(services: Services, device: Publisher) -> None:
    """Register PANEL with a first service, then stop it, keeping its broker session."""
    async with running(*services) as first:
        await device.send(PANEL, TopicKind.STATUS, PANEL.status())
        await first.wait_processed(1)


async def test_backlog_published_while_down_arrives_after_restart(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    session_id: str,
    device: Publisher,
    db: psycopg.Connection[Any],
) -> None:
    """Messages sent while ingest is down all arrive later, each written point kept apart."""
    services: Services = (migrated_pg, mqtt_settings, influx_settings, session_id)
    await register_and_stop(services, device)
    # Every heartbeat differs from the one before: each is a point. Delivered in a burst on
    # restart, many share a receive millisecond; their points must not overwrite each other.
    heartbeats = [PANEL.heartbeat(temperature=20.0 + i % 2) for i in range(300)]
    states = [pb.AlarmEvent.ACTIVE, pb.AlarmEvent.INACTIVE]
    alarms = [PANEL.alarm(seq, state=states[seq % 2]) for seq in range(1, 11)]
    for heartbeat in heartbeats:
        await device.send(PANEL, TopicKind.HEARTBEAT, heartbeat)
    for alarm in alarms:
        await device.send(PANEL, TopicKind.ALARM, alarm)
    backlog = len(heartbeats) + len(alarms)

    async with running(*services) as second:
        await second.wait_processed(backlog, timeout_s=30)
        totals = second.pipeline.totals
        assert (totals.device_messages, totals.accepted, totals.duplicates) == (backlog, backlog, 0)
        assert not totals.dead_letters
        assert totals.points == backlog

    assert one(db, "SELECT count(*) FROM dead_letters") == (0,)
    assert one(db, "SELECT sum(received), sum(written) FROM heartbeat_counts") == (300, 300)
    assert one(db, "SELECT count(*), max(sequence) FROM alarm_sequences") == (10, 10)
    assert one(db, "SELECT panic1_count FROM device_status") == (5,)
    assert outbox_size(db) == 0  # InfluxDB confirmed every point
    assert len(points(influx_settings, "heartbeat")) == len(heartbeats)
    assert len(points(influx_settings, "alarm")) == len(alarms)


async def test_influx_outage_keeps_points_in_outbox_until_a_restart_drains_it(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    session_id: str,
    device: Publisher,
    db: psycopg.Connection[Any],
) -> None:
    """With InfluxDB unreachable PostgreSQL gets everything; the outbox drains once it is back."""
    down = influx_settings.model_copy(update={"influx_url": UNREACHABLE_INFLUX})
    temperatures = [20.0, 21.0, 20.0, 21.0, 20.0]  # each a point
    async with running(migrated_pg, mqtt_settings, down, session_id) as first:
        await device.send(PANEL, TopicKind.STATUS, PANEL.status())
        for temperature in temperatures:
            await device.send(PANEL, TopicKind.HEARTBEAT, PANEL.heartbeat(temperature=temperature))
        await device.send(PANEL, TopicKind.ALARM, PANEL.alarm(1))
        await first.wait_processed(2 + len(temperatures))
        assert first.pipeline.influx_backlog
        written = first.pipeline.totals.points

    assert written == len(temperatures) + 1
    assert outbox_size(db) == written
    assert one(db, "SELECT hostname FROM devices") == (PANEL.hostname,)
    assert one(db, "SELECT sum(received), sum(written) FROM heartbeat_counts") == (5, 5)
    assert one(db, "SELECT count(*) FROM alarm_events") == (1,)
    assert points(influx_settings, "heartbeat") == []

    async with running(
        migrated_pg, mqtt_settings, influx_settings, session_id, outbox_drain_interval_s=0.1
    ):
        await outbox_drained(db)

    history = points(influx_settings, "heartbeat")
    assert [p["temperature"] for p in history] == temperatures
    assert len(points(influx_settings, "alarm")) == 1
