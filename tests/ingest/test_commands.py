"""Commands end to end: a scripted device answers (or ignores) them over the real broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from fleetwatch.settings import InfluxSettings, MqttSettings, PostgresSettings
from ingest.command_api import CommandApi
from ingest.commands import CommandRefused, CommandSpec, CommandTiming
from ingest.contract import TopicKind, pb
from ingest.service import IngestService
from stores.postgres.commands_store import TargetFilter
from tests.ingest.conftest import forget_session, start_ingest
from tests.support.devices import FakePanel
from tests.support.fake_device import FakeDevice, fake_device

PANEL = FakePanel(11)
TIMING = CommandTiming(
    ack_timeout=timedelta(seconds=30),
    backoff_base=timedelta(seconds=5),
    max_retries=2,
    sync_backoff_base=timedelta(milliseconds=1),
)
REBOOT = CommandSpec("reboot", {"delayMs": 100})


class Harness:
    """A running ingest service plus the count of messages it should have processed."""

    def __init__(self, service: IngestService, db: psycopg.Connection[Any]) -> None:
        self.service = service
        self.db = db
        self.sent = 0

    async def deliver(self, device: FakeDevice, kind: TopicKind, message: object) -> None:
        await device.send(kind, message)
        await self.settle(1)

    async def settle(self, messages: int) -> None:
        self.sent += messages
        await self.service.wait_processed(self.sent)

    def command(self, request_id: str) -> dict[str, Any]:
        with self.db.cursor(row_factory=psycopg.rows.dict_row) as cur:
            cur.execute("SELECT * FROM command_log WHERE request_id = %s", [request_id])
            row = cur.fetchone()
        assert row is not None
        return row

    def device_id(self) -> int:
        row = self.db.execute(
            "SELECT id FROM devices WHERE mac_address = %s", [PANEL.mac]
        ).fetchone()
        assert row is not None
        return int(row[0])

    async def register(self, device: FakeDevice) -> int:
        """Register the panel and complete its device-id sync, as a real panel would."""
        await self.deliver(device, TopicKind.STATUS, PANEL.status())
        assert await self.service.dispatch_now() == 1
        sync = await device.next_command()
        assert sync.WhichOneof("payload") == "set_device_id"
        await device.respond(sync, "ACKNOWLEDGED")
        await device.respond(sync, "COMPLETED")
        await self.settle(2)
        device_id = self.device_id()
        await self.deliver(device, TopicKind.STATUS, PANEL.status(device_db_id=device_id))
        return device_id


@pytest.fixture
async def harness(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    db: psycopg.Connection[Any],
    ingest_client_id: str,
) -> AsyncIterator[Harness]:
    """Ingest with its timers driven by the test (dispatch_now / sweep_now)."""
    service, stop, task = await start_ingest(
        migrated_pg,
        mqtt_settings,
        influx_settings,
        ingest_client_id,
        command_tick_s=3600,
        liveness_interval_s=3600,
        timing=TIMING,
    )
    try:
        yield Harness(service, db)
    finally:
        stop.set()
        await task
        await forget_session(mqtt_settings, ingest_client_id)


@pytest.fixture
async def device(mqtt_settings: MqttSettings) -> AsyncIterator[FakeDevice]:
    async with fake_device(mqtt_settings, PANEL) as fake:
        yield fake


def api(pg: PostgresSettings) -> CommandApi:
    return CommandApi(pg, TIMING)


def queue(pg: PostgresSettings, spec: CommandSpec = REBOOT, **kwargs: Any) -> str:  # noqa: ANN401
    rows = api(pg).send(
        spec,
        TargetFilter(hostnames=[PANEL.hostname]),
        caller_level=2,
        initiated_by="test",
        **kwargs,
    )
    assert len(rows) == 1
    assert rows[0].status == "PENDING"
    return rows[0].request_id


async def test_command_runs_through_every_happy_state(
    harness: Harness, device: FakeDevice, migrated_pg: PostgresSettings
) -> None:
    """PENDING → SENT → ACKNOWLEDGED → COMPLETED, with the device's response data kept."""
    await harness.register(device)
    request_id = queue(migrated_pg)
    assert await harness.service.dispatch_now() == 1
    envelope = await device.next_command()
    assert envelope.request_id == request_id
    assert envelope.type == pb.CommandEnvelope.SYSTEM
    assert envelope.reboot.delay_ms == 100
    assert envelope.sequence == 2  # the sync command was 1
    assert harness.command(request_id)["status"] == "SENT"
    await device.respond(envelope, "ACKNOWLEDGED")
    await harness.settle(1)
    assert harness.command(request_id)["status"] == "ACKNOWLEDGED"
    await device.respond(envelope, "COMPLETED", code=200, data={"rebooting": "yes"})
    await harness.settle(1)
    row = harness.command(request_id)
    assert (row["status"], row["response_code"], row["response_data"]) == (
        "COMPLETED",
        200,
        {"rebooting": "yes"},
    )
    assert row["sent_at"] <= row["acknowledged_at"] <= row["completed_at"]


async def test_device_failure_and_duplicate_responses(
    harness: Harness, device: FakeDevice, migrated_pg: PostgresSettings
) -> None:
    """A failed completion is FAILED with the device's error; repeating it changes nothing."""
    await harness.register(device)
    request_id = queue(migrated_pg)
    await harness.service.dispatch_now()
    envelope = await device.next_command()
    await device.respond(envelope, "COMPLETED", success=False, code=7, error="relay stuck")
    await device.respond(envelope, "COMPLETED", success=False, code=7, error="relay stuck")
    await device.respond(envelope, "ACKNOWLEDGED")
    await harness.settle(3)
    row = harness.command(request_id)
    assert (row["status"], row["error_message"], row["response_code"]) == (
        "FAILED",
        "relay stuck",
        7,
    )
    assert row["notes"] is None


async def test_silence_times_out_retries_with_backoff_then_fails(
    harness: Harness, device: FakeDevice, migrated_pg: PostgresSettings
) -> None:
    """No acknowledgement: TIMEOUT, resent after backoff, and FAILED when retries run out."""
    await harness.register(device)
    request_id = queue(migrated_pg)
    t0 = datetime.now(UTC)
    await harness.service.dispatch_now(t0)
    first = await device.next_command()
    await harness.service.dispatch_now(t0 + timedelta(seconds=31))
    row = harness.command(request_id)
    assert (row["status"], row["retry_count"]) == ("TIMEOUT", 1)
    assert row["next_retry_at"] == t0 + timedelta(seconds=36)
    assert await harness.service.dispatch_now(t0 + timedelta(seconds=35)) == 0
    assert await harness.service.dispatch_now(t0 + timedelta(seconds=36)) == 1
    again = await device.next_command()
    assert (again.request_id, again.sequence) == (first.request_id, first.sequence)
    await harness.service.dispatch_now(t0 + timedelta(seconds=67))
    row = harness.command(request_id)
    assert (row["status"], row["retry_count"]) == ("TIMEOUT", 2)
    assert row["next_retry_at"] == t0 + timedelta(seconds=77)  # backoff doubled: 10 s
    await harness.service.dispatch_now(t0 + timedelta(seconds=77))
    await device.next_command()
    await harness.service.dispatch_now(t0 + timedelta(seconds=108))
    row = harness.command(request_id)
    assert row["status"] == "FAILED"
    assert "no acknowledgement after 3 attempts" in row["error_message"]


async def test_late_acknowledgement_after_timeout_is_recorded(
    harness: Harness, device: FakeDevice, migrated_pg: PostgresSettings
) -> None:
    """An acknowledgement arriving after TIMEOUT is kept (and stops the retries)."""
    await harness.register(device)
    request_id = queue(migrated_pg)
    t0 = datetime.now(UTC)
    await harness.service.dispatch_now(t0)
    envelope = await device.next_command()
    await harness.service.dispatch_now(t0 + timedelta(seconds=31))
    await device.respond(envelope, "ACKNOWLEDGED")
    await harness.settle(1)
    row = harness.command(request_id)
    assert row["status"] == "ACKNOWLEDGED"
    assert "late" in row["notes"]
    assert await harness.service.dispatch_now(t0 + timedelta(seconds=60)) == 0


async def test_cancelled_commands_are_not_sent(
    harness: Harness, device: FakeDevice, migrated_pg: PostgresSettings
) -> None:
    """A command cancelled before dispatch is never published."""
    await harness.register(device)
    request_id = queue(migrated_pg)
    assert api(migrated_pg).cancel([request_id], by="ops") == [request_id]
    assert api(migrated_pg).cancel([request_id], by="ops") == []
    assert await harness.service.dispatch_now() == 0
    assert harness.command(request_id)["status"] == "CANCELLED"
    assert device.inbox.empty()


async def test_offline_device_gets_its_command_when_back_or_it_expires(
    harness: Harness, device: FakeDevice, migrated_pg: PostgresSettings
) -> None:
    """Commands wait while the device is offline, go out when it returns, expire otherwise."""
    device_id = await harness.register(device)
    await harness.deliver(device, TopicKind.LWT, b"")
    waiting = queue(migrated_pg)
    expiring = queue(migrated_pg, expires_in=timedelta(seconds=60))
    assert await harness.service.dispatch_now() == 0
    await harness.service.dispatch_now(datetime.now(UTC) + timedelta(seconds=61))
    assert harness.command(expiring)["status"] == "FAILED"
    assert "expired" in harness.command(expiring)["error_message"]
    await harness.deliver(device, TopicKind.HEARTBEAT, PANEL.heartbeat(device_db_id=device_id))
    assert await harness.service.dispatch_now() == 1
    assert (await device.next_command()).request_id == waiting


async def test_retry_survives_a_restart(
    harness: Harness,
    device: FakeDevice,
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
) -> None:
    """A command in TIMEOUT when ingest stops is resent by the next ingest on schedule."""
    await harness.register(device)
    request_id = queue(migrated_pg)
    t0 = datetime.now(UTC)
    await harness.service.dispatch_now(t0)
    await device.next_command()
    await harness.service.dispatch_now(t0 + timedelta(seconds=31))
    assert harness.command(request_id)["status"] == "TIMEOUT"
    client_id = f"ingest-{uuid.uuid4().hex[:10]}"
    service, stop, task = await start_ingest(
        migrated_pg, mqtt_settings, influx_settings, client_id, command_tick_s=3600, timing=TIMING
    )
    try:
        assert await service.dispatch_now(t0 + timedelta(seconds=36)) == 1
        assert (await device.next_command()).request_id == request_id
    finally:
        stop.set()
        await task
        await forget_session(mqtt_settings, client_id)


async def test_two_ingest_processes_never_send_a_command_twice(
    harness: Harness,
    device: FakeDevice,
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
) -> None:
    """Two dispatchers racing over 20 commands publish each exactly once."""
    await harness.register(device)
    requests = {queue(migrated_pg) for _ in range(20)}
    client_id = f"ingest-{uuid.uuid4().hex[:10]}"
    other, stop, task = await start_ingest(
        migrated_pg, mqtt_settings, influx_settings, client_id, command_tick_s=3600, timing=TIMING
    )
    try:
        counts = await asyncio.gather(harness.service.dispatch_now(), other.dispatch_now())
        assert sum(counts) == 20
        received = [(await device.next_command()).request_id for _ in range(20)]
    finally:
        stop.set()
        await task
        await forget_session(mqtt_settings, client_id)
    assert sorted(received) == sorted(requests)
    assert device.inbox.empty()


async def test_authorisation_level_is_enforced(migrated_pg: PostgresSettings) -> None:
    """A reboot needs level 2: a level-1 caller is refused before anything is stored."""
    with pytest.raises(CommandRefused, match="needs authorisation level 2"):
        api(migrated_pg).send(
            REBOOT, TargetFilter(every_device=True), caller_level=1, initiated_by="intern"
        )
    with psycopg.connect(str(migrated_pg.database_url)) as conn:
        assert conn.execute("SELECT count(*) FROM command_log").fetchone() == (0,)


async def test_device_id_sync_retries_and_alerts_after_three_failures(
    harness: Harness, device: FakeDevice
) -> None:
    """A device that keeps its wrong id gets SET_DEVICE_ID again and again, then an alert."""
    for attempt in range(1, 5):
        await harness.deliver(device, TopicKind.STATUS, PANEL.status(device_db_id=0))
        assert await harness.service.dispatch_now() == 1, attempt
        sync = await device.next_command()
        assert sync.set_device_id.device_db_id == harness.device_id()
        await device.respond(sync, "COMPLETED")
        await harness.settle(1)
    alert = harness.db.execute(
        "SELECT alarm_type::text, priority::text, metadata->>'alert' FROM alarm_events "
        "WHERE resolved_at IS NULL"
    ).fetchall()
    assert alert == [("UNKNOWN", "HIGH", "device_id_sync_failed")]
    device_id = harness.device_id()
    await harness.deliver(device, TopicKind.STATUS, PANEL.status(device_db_id=device_id))
    synced = harness.db.execute("SELECT device_synced, sync_attempts FROM device_status").fetchone()
    assert synced == (True, 0)
    open_alerts = harness.db.execute(
        "SELECT count(*) FROM alarm_events WHERE resolved_at IS NULL"
    ).fetchone()
    assert open_alerts == (0,)


async def test_liveness_timeout_and_return(harness: Harness, device: FakeDevice) -> None:
    """Silence past the limit: offline with a timeout row; the next message: connected."""
    await harness.register(device)
    await harness.deliver(device, TopicKind.HEARTBEAT, PANEL.heartbeat())
    outcome = await harness.service.sweep_now(datetime.now(UTC) + timedelta(seconds=91))
    assert outcome.points_written == 1
    state = harness.db.execute("SELECT is_online, device_state FROM device_status").fetchone()
    assert state == (False, "OFFLINE")
    assert (
        await harness.service.sweep_now(datetime.now(UTC) + timedelta(seconds=200))
    ).points_written == 0
    await harness.deliver(device, TopicKind.HEARTBEAT, PANEL.heartbeat())
    events = harness.db.execute(
        "SELECT event::text FROM device_connection_log ORDER BY id"
    ).fetchall()
    assert events == [("connected",), ("timeout",), ("connected",)]
