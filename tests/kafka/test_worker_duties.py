"""What ingest does besides storing messages, done by two workers: commands sent once and
followed to completion, and a silent device taken offline once, by its own worker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from fleetwatch.settings import InfluxSettings, MqttSettings, PostgresSettings
from ingest.command_api import CommandApi
from ingest.commands import CommandSpec, CommandTiming
from ingest.contract import TopicKind
from ingest.partitioning import partition_of
from ingest.service import IngestService
from stores.postgres.commands_store import TargetFilter
from tests.kafka.scale import kafka_settings, running_bridge, running_worker
from tests.support.devices import FakePanel
from tests.support.fake_device import FakeDevice, fake_device

PANEL = FakePanel(7)
TIMING = CommandTiming(ack_timeout=timedelta(seconds=30), sync_backoff_base=timedelta(seconds=1))


def status_of(db: psycopg.Connection[Any], request_id: str) -> str:
    row = db.execute("SELECT status::text FROM command_log WHERE request_id = %s", [request_id])
    found = row.fetchone()
    assert found is not None
    return str(found[0])


async def until_status(db: psycopg.Connection[Any], request_id: str, status: str) -> None:
    async with asyncio.timeout(20):
        while status_of(db, request_id) != status:  # noqa: ASYNC110 - other processes' commits
            await asyncio.sleep(0.05)


async def dispatch_on_both(workers: list[IngestService]) -> int:
    """Both workers claim due commands at once; how many were sent in all."""
    return sum(await asyncio.gather(*(w.dispatch_now() for w in workers)))


async def run_command(
    db: psycopg.Connection[Any], workers: list[IngestService], device: FakeDevice, request: str
) -> None:
    """Sent once by one of the workers; the device's answers reach its worker by way of the
    bridge and Kafka and complete it."""
    assert await dispatch_on_both(workers) == 1
    envelope = await device.next_command()
    assert envelope.request_id == request
    await until_status(db, request, "SENT")
    await device.respond(envelope, "ACKNOWLEDGED")
    await device.respond(envelope, "COMPLETED")
    await until_status(db, request, "COMPLETED")
    assert await dispatch_on_both(workers) == 0
    assert device.inbox.empty()


async def test_commands_and_liveness_with_two_workers(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    db: psycopg.Connection[Any],
    kafka_service: str,
) -> None:
    kafka = kafka_settings(kafka_service, partitions=4)
    pg, mqtt, influx = migrated_pg, mqtt_settings, influx_settings
    # The loops' timers are the test's: dispatch_now and sweep_now.
    timers = {"command_tick_s": 3600, "liveness_interval_s": 3600, "timing": TIMING}
    async with (
        running_bridge(mqtt, kafka),
        running_worker(pg, mqtt, influx, kafka, "a", **timers) as a,
        running_worker(pg, mqtt, influx, kafka, "b", **timers) as b,
        fake_device(mqtt, PANEL) as device,
    ):
        workers = [a, b]
        owner = next(
            w
            for w in workers
            if partition_of(PANEL.hostname, 4) in w.transports.default.positions.share.parts  # type: ignore[union-attr]
        )
        await device.send(TopicKind.STATUS, PANEL.status())
        await owner.wait_processed(1)
        # The device-id sync ingest queues for a new panel, then an operator's command.
        (sync,) = db.execute("SELECT request_id FROM command_log").fetchone() or ()
        await run_command(db, workers, device, str(sync))
        rows = CommandApi(pg, TIMING).send(
            CommandSpec("reboot", {"delayMs": 100}),
            TargetFilter(hostnames=[PANEL.hostname]),
            caller_level=2,
            initiated_by="test",
        )
        await run_command(db, workers, device, rows[0].request_id)
        handled = owner.pipeline.totals.device_messages
        await device.send(TopicKind.HEARTBEAT, PANEL.heartbeat())  # its first history point
        await owner.wait_processed(handled + 1)
        # Silent past the limit: its own worker takes it offline, the other leaves it be.
        later = datetime.now(UTC) + timedelta(seconds=120)
        swept = await asyncio.gather(*(w.sweep_now(later) for w in workers))
        assert {w is owner: s.points_written for w, s in zip(workers, swept, strict=True)} == {
            True: 1,
            False: 0,
        }
    events = db.execute("SELECT event::text FROM device_connection_log ORDER BY id").fetchall()
    assert events == [("connected",), ("timeout",)]
