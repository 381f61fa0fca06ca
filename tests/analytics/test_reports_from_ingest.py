"""Every report loaded from stores filled by the real ingest path (broker, ingest, CDC)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from influxdb_client.client.influxdb_client import InfluxDBClient
from sqlalchemy import Engine

from analytics.alarms import active_alarms, alarm_counts, output_activity, response_times
from analytics.commands import command_success
from analytics.fleet import device_health, fleet_summary, unsynced_devices
from analytics.load import (
    InfluxBuckets,
    load_active_alarms,
    load_alarm_events,
    load_commands,
    load_devices,
    load_heartbeat_counts,
    load_points_per_day,
    load_trend,
)
from analytics.selection import Period, ReportFilter
from analytics.storage import cdc_savings
from fleetwatch.settings import InfluxSettings, MqttSettings, PostgresSettings
from ingest.contract import TopicKind, pb
from ingest.service import IngestService
from tests.ingest.conftest import forget_session, start_ingest
from tests.support.devices import FakePanel
from tests.support.fake_device import FakeDevice, fake_device

A = FakePanel(101)
B = FakePanel(102)


@pytest.fixture
async def ingest(
    migrated_pg: PostgresSettings, mqtt_settings: MqttSettings, influx_settings: InfluxSettings
) -> AsyncIterator[IngestService]:
    """Ingest on the test's stores, its command timers driven by the test."""
    client_id = f"ingest-{uuid.uuid4().hex[:10]}"
    service, stop, task = await start_ingest(
        migrated_pg,
        mqtt_settings,
        influx_settings,
        client_id,
        command_tick_s=3600,
        liveness_interval_s=3600,
    )
    try:
        yield service
    finally:
        stop.set()
        await task
        await forget_session(mqtt_settings, client_id)


async def _play(ingest: IngestService, a: FakeDevice, b: FakeDevice) -> None:
    """A: synced, four heartbeats, a panic raised and cleared. B: weak, erroring, unsynced,
    a tamper left open, a siren run of 12 s, then its last will."""
    sent = 0

    async def deliver(device: FakeDevice, kind: TopicKind, message: object) -> None:
        nonlocal sent
        await device.send(kind, message)
        sent += 1
        await ingest.wait_processed(sent)

    await deliver(a, TopicKind.STATUS, A.status())
    await deliver(
        b,
        TopicKind.STATUS,
        B.status(zone=5, country="PT", rssi=-85, error_flags=4, firmware="2.0.0"),
    )
    assert await ingest.dispatch_now() == 2  # each device's set_device_id
    sync = await a.next_command()
    await b.next_command()  # B never answers: its command stays in flight
    await a.respond(sync, "ACKNOWLEDGED")
    await a.respond(sync, "COMPLETED")
    sent += 2
    await ingest.wait_processed(sent)
    known = sync.set_device_id.device_db_id  # A now sends the id it was given
    await deliver(a, TopicKind.STATUS, A.status(device_db_id=known))
    for temperature in (21.0, 21.2, 21.4, 21.6):
        await deliver(
            a, TopicKind.HEARTBEAT, A.heartbeat(temperature=temperature, device_db_id=known)
        )
    await deliver(a, TopicKind.ALARM, A.alarm(1, device_db_id=known))
    await deliver(a, TopicKind.ALARM, A.alarm(2, state=pb.AlarmEvent.INACTIVE, device_db_id=known))
    await deliver(
        b,
        TopicKind.ALARM,
        B.alarm(1, type=pb.AlarmEvent.TAMPER, priority=pb.AlarmEvent.HIGH),
    )
    siren = {"type": pb.AlarmEvent.OUTPUT_EVENT, "output_type": 1, "priority": pb.AlarmEvent.MEDIUM}
    await deliver(b, TopicKind.ALARM, B.alarm(2, state=pb.AlarmEvent.STARTING, **siren))
    await deliver(
        b, TopicKind.ALARM, B.alarm(3, state=pb.AlarmEvent.INACTIVE, elapsed_seconds=12, **siren)
    )
    await deliver(b, TopicKind.LWT, b"")


async def test_reports_from_the_ingest_path(
    ingest: IngestService,
    mqtt_settings: MqttSettings,
    engine: Engine,
    influx_client: InfluxDBClient,
    influx_settings: InfluxSettings,
) -> None:
    """Fleet, alarm, command, storage and trend reports agree with what the devices did."""
    async with fake_device(mqtt_settings, A) as a, fake_device(mqtt_settings, B) as b:
        await _play(ingest, a, b)
    now = datetime.now(UTC)
    period = Period(now - timedelta(hours=1), now + timedelta(minutes=1))

    fleet = load_devices(engine, period)
    summary = fleet_summary(fleet, now=now).row(0, named=True)
    assert (summary["devices"], summary["online"], summary["offline"]) == (2, 1, 1)
    assert (summary["not_synced"], summary["weak_rssi"], summary["with_errors"]) == (1, 1, 1)
    assert summary["disconnects"] == 1
    assert unsynced_devices(fleet)["hostname"].to_list() == [B.hostname]
    assert device_health(fleet).row(0, named=True)["hostname"] == B.hostname

    events = load_alarm_events(engine, period)
    assert dict(alarm_counts(events, "alarm_type").select("alarm_type", "events").rows()) == {
        "PANIC1": 1,
        "TAMPER": 1,
        "OUTPUT_EVENT": 1,
    }
    times = response_times(events).row(0, named=True)
    assert (times["alarms"], times["resolved"]) == (2, 1)
    assert times["resolve_p50_s"] is not None
    assert 0 <= times["resolve_p50_s"] < 10
    active = active_alarms(load_active_alarms(engine), now=now)
    assert active.select("hostname", "alarm_type").rows() == [(B.hostname, "TAMPER")]
    siren = output_activity(events).row(0, named=True)
    assert (siren["output"], siren["activations"], siren["total_seconds"]) == ("SIREN", 1, 12.0)

    commands = command_success(load_commands(engine, period)).row(0, named=True)
    assert (commands["total"], commands["completed"], commands["in_flight"]) == (2, 1, 1)
    assert commands["success_rate"] == 1.0
    assert commands["ack_p50_s"] is not None
    assert commands["ack_p50_s"] >= 0

    counts = load_heartbeat_counts(
        engine, Period(now - timedelta(hours=2), now + timedelta(hours=1))
    )
    savings = cdc_savings(counts, "device").filter(hostname=A.hostname).row(0, named=True)
    assert (savings["received"], savings["written"], savings["reduction"]) == (4, 2, 0.5)

    buckets = InfluxBuckets(raw=influx_settings.influx_bucket, hourly="unused")
    stored = load_points_per_day(
        influx_client, buckets, period, ReportFilter(hostnames=(A.hostname,))
    )
    assert dict(stored.group_by("change_type").agg(pl.col("points").sum()).rows()) == {
        "PERIODIC": 1,
        "SENSOR_DATA": 1,
    }
    trend = load_trend(
        influx_client,
        buckets,
        "temperature",
        period,
        timedelta(hours=2),
        filters=ReportFilter(hostnames=(A.hostname,)),
    )
    assert trend["hostname"].to_list() == [A.hostname]
    # 21.0 held for milliseconds, then 21.6 until the period's end.
    assert 21.5 < trend["value"].item() <= 21.6 + 1e-6
