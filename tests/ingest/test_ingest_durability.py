"""No accepted message is lost when ingest is killed or PostgreSQL goes away mid-stream."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from pydantic import PostgresDsn

from fleetwatch.settings import InfluxSettings, MqttSettings, PostgresSettings
from ingest.broker import make_client
from ingest.contract import TopicKind
from stores.influx.writer import LineWriter
from tests.ingest.conftest import forget_session, start_ingest
from tests.support.devices import FakePanel, Publisher, now_ms
from tests.support.outbox import outbox_drained, outbox_size
from tests.support.processes import child
from tests.support.robots import job as robot_job
from tests.support.robots import state as robot_state
from tests.support.stored import count_points
from tests.support.tcp_proxy import TcpProxy
from tests.support.telemetry import VIBRATION, add_device, declare, reading

PANELS = [FakePanel(n) for n in range(1, 21)]


def total_received(db: psycopg.Connection[Any]) -> int:
    row = db.execute("SELECT coalesce(sum(received), 0) FROM heartbeat_counts").fetchone()
    return int(row[0]) if row else 0


async def wait_until_received(db: psycopg.Connection[Any], count: int, timeout_s: float) -> None:
    """Poll PostgreSQL until ``count`` heartbeats are committed (a subprocess has no event)."""
    async with asyncio.timeout(timeout_s):
        while total_received(db) < count:  # noqa: ASYNC110 - another process: no event to await
            await asyncio.sleep(0.1)


@contextmanager
def ingest_process(
    pg: PostgresSettings, mqtt: MqttSettings, influx: InfluxSettings, client_id: str
) -> Iterator[subprocess.Popen[str]]:
    """``fleetwatch ingest`` as a child process, returned once it has subscribed."""
    env = {
        **os.environ,
        "FLEETWATCH_DATABASE_URL": str(pg.database_url),
        "FLEETWATCH_MQTT_HOST": mqtt.mqtt_host,
        "FLEETWATCH_MQTT_PORT": str(mqtt.mqtt_port),
        "FLEETWATCH_TOPIC_PREFIX": mqtt.topic_prefix,
        "FLEETWATCH_MQTT_CLIENT_ID": client_id,
        "FLEETWATCH_INFLUX_URL": influx.influx_url,
        "FLEETWATCH_INFLUX_TOKEN": influx.influx_token.get_secret_value(),
        "FLEETWATCH_INFLUX_ORG": influx.influx_org,
        "FLEETWATCH_INFLUX_BUCKET": influx.influx_bucket,
    }
    with child(["ingest", "--batch-size", "200"], env, "subscribed to") as process:
        yield process


async def publish_stream(mqtt: MqttSettings, per_panel: int) -> int:
    """Register every panel, then publish ``per_panel`` heartbeats each; returns heartbeats."""
    async with make_client(mqtt) as client:
        device = Publisher(client, mqtt.topic_prefix)
        for panel in PANELS:
            await device.send(panel, TopicKind.STATUS, panel.status())
        for i in range(per_panel):
            for panel in PANELS:
                heartbeat = panel.heartbeat(temperature=20.0 + (i % 7) * 0.3, uptime=100 + i)
                await device.send(panel, TopicKind.HEARTBEAT, heartbeat)
    return per_panel * len(PANELS)


def through(proxy: TcpProxy, pg: PostgresSettings) -> PostgresSettings:
    """Settings reaching ``pg``'s database by way of ``proxy``."""
    host = pg.database_url.hosts()[0]
    url = str(pg.database_url).replace(f"{host['host']}:{host['port']}", f"127.0.0.1:{proxy.port}")
    return PostgresSettings(database_url=PostgresDsn(url))


def influx_point_count(influx: InfluxSettings) -> int:
    return count_points(influx, ["heartbeat"])


async def kill_mid_stream_and_restart(
    pg: PostgresSettings,
    mqtt: MqttSettings,
    influx: InfluxSettings,
    db: psycopg.Connection[Any],
    *,
    publish: Callable[[], Awaitable[int]],
    measurements: Sequence[str],
    settled: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """The kill -9 bar for any kind: ``publish`` a stream (it returns the readings it sent),
    SIGKILL ingest once a quarter is stored, restart it; then every reading is counted
    once, ``measurements`` hold exactly the points written, and nothing is dead-lettered.
    ``settled`` waits, in the restarted process, for what else the test checks."""
    client_id = f"ingest-{uuid.uuid4().hex[:10]}"
    try:
        with ingest_process(pg, mqtt, influx, client_id) as first:
            sent = await publish()
            await wait_until_received(db, sent // 4, timeout_s=60)
            first.kill()
            first.wait(timeout=10)
        stored_at_kill = total_received(db)
        with ingest_process(pg, mqtt, influx, client_id):
            await wait_until_received(db, sent, timeout_s=90)
            # Points of a batch committed just before the kill wait in the outbox for the
            # new process's drain loop.
            await outbox_drained(db)
            if settled is not None:
                await settled()
    finally:
        await forget_session(mqtt, client_id)
    assert stored_at_kill < sent, "the kill came too late to prove anything"
    assert total_received(db) == sent
    row = db.execute("SELECT sum(written) FROM heartbeat_counts").fetchone()
    assert row is not None
    assert count_points(influx, measurements) == int(row[0])
    assert db.execute("SELECT count(*) FROM dead_letters").fetchone() == (0,)


async def test_kill_9_mid_stream_loses_nothing(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    db: psycopg.Connection[Any],
) -> None:
    """SIGKILL during a stream, then a restart: every heartbeat counted once, no extra points."""
    await kill_mid_stream_and_restart(
        migrated_pg,
        mqtt_settings,
        influx_settings,
        db,
        publish=lambda: publish_stream(mqtt_settings, per_panel=150),
        measurements=["heartbeat"],
    )


async def test_postgres_outage_holds_acknowledgements_until_it_returns(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    db: psycopg.Connection[Any],
) -> None:
    """While PostgreSQL is unreachable nothing is acknowledged; when it returns all is stored."""
    host = migrated_pg.database_url.hosts()[0]
    client_id = f"ingest-{uuid.uuid4().hex[:10]}"
    async with TcpProxy(str(host["host"]), int(host["port"] or 5432)) as proxy:
        via_proxy = through(proxy, migrated_pg)
        service, stop, task = await start_ingest(
            via_proxy, mqtt_settings, influx_settings, client_id, retry_max_s=0.5
        )
        try:
            panel = PANELS[0]
            async with make_client(mqtt_settings) as client:
                device = Publisher(client, mqtt_settings.topic_prefix)
                await device.send(panel, TopicKind.STATUS, panel.status())
                await service.wait_processed(1)
                await proxy.cut()
                for i in range(10):
                    await device.send(panel, TopicKind.HEARTBEAT, panel.heartbeat(uptime=i))
                await service.wait_store_retry()
                assert total_received(db) == 0
                await proxy.restore()
                await service.wait_processed(11, timeout_s=30)
        finally:
            stop.set()
            await task
            await forget_session(mqtt_settings, client_id)
    assert total_received(db) == 10
    assert service.failure is None


async def test_full_outbox_pauses_intake_until_influxdb_returns(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    db: psycopg.Connection[Any],
) -> None:
    """With InfluxDB down and the outbox at its bound, ingest stops taking messages."""
    unreachable = influx_settings.model_copy(update={"influx_url": "http://127.0.0.1:9"})
    client_id = f"ingest-{uuid.uuid4().hex[:10]}"
    service, stop, task = await start_ingest(
        migrated_pg,
        mqtt_settings,
        unreachable,
        client_id,
        max_outbox_points=2,
        outbox_drain_interval_s=0.05,
    )
    panel = PANELS[0]
    try:
        async with make_client(mqtt_settings) as client:
            device = Publisher(client, mqtt_settings.topic_prefix)
            await device.send(panel, TopicKind.STATUS, panel.status())
            for temperature in (20.0, 25.0):
                await device.send(
                    panel, TopicKind.HEARTBEAT, panel.heartbeat(temperature=temperature)
                )
            await service.wait_processed(3)
            async with asyncio.timeout(10):
                while service.accepting:  # noqa: ASYNC110 - the drain loop flips it
                    await asyncio.sleep(0.05)
            await device.send(panel, TopicKind.HEARTBEAT, panel.heartbeat(temperature=30.0))
            assert outbox_size(db) == 2
    finally:
        stop.set()
        await task
    # A service that reaches InfluxDB drains the outbox and takes the held message.
    service, stop, task = await start_ingest(
        migrated_pg, mqtt_settings, influx_settings, client_id, outbox_drain_interval_s=0.05
    )
    try:
        await service.wait_processed(1)
        await asyncio.to_thread(service.pipeline.drain_outbox)
    finally:
        stop.set()
        await task
        await forget_session(mqtt_settings, client_id)
    assert total_received(db) == 3
    assert outbox_size(db) == 0
    assert influx_point_count(influx_settings) == 3


async def test_sigterm_stops_cleanly_within_bounds_and_loses_nothing(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    db: psycopg.Connection[Any],
) -> None:
    """SIGTERM mid-stream: exit 0 within seconds; a restart then stores every heartbeat once."""
    client_id = f"ingest-{uuid.uuid4().hex[:10]}"
    try:
        with ingest_process(migrated_pg, mqtt_settings, influx_settings, client_id) as first:
            sent = await publish_stream(mqtt_settings, per_panel=100)
            await wait_until_received(db, sent // 4, timeout_s=60)
            first.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(first.wait, 15)
        assert code == 0
        with ingest_process(migrated_pg, mqtt_settings, influx_settings, client_id):
            await wait_until_received(db, sent, timeout_s=90)
    finally:
        await forget_session(mqtt_settings, client_id)
    assert total_received(db) == sent
    assert db.execute("SELECT count(*) FROM dead_letters").fetchone() == (0,)


class CutAfterWrite:
    """The real InfluxDB writer, which cuts PostgreSQL's proxy once right after a write has
    succeeded: the moment between a batch's InfluxDB write and its outbox delete."""

    def __init__(
        self, writer: LineWriter, proxy: TcpProxy, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._writer = writer
        self._proxy = proxy
        self._loop = loop
        self.cut = threading.Event()

    def write(self, lines: Sequence[str]) -> None:
        self._writer.write(lines)
        if not self.cut.is_set():
            asyncio.run_coroutine_threadsafe(self._proxy.cut(), self._loop).result(timeout=5)
            self.cut.set()


async def test_batch_committed_before_postgres_went_away_is_not_handled_again(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    db: psycopg.Connection[Any],
) -> None:
    """PostgreSQL cut after a batch's commit and InfluxDB write, before its outbox delete:
    the batch is not handled twice, and every count is exact once PostgreSQL is back."""
    host = migrated_pg.database_url.hosts()[0]
    client_id = f"ingest-{uuid.uuid4().hex[:10]}"
    heartbeats = 12
    async with TcpProxy(str(host["host"]), int(host["port"] or 5432)) as proxy:
        via_proxy = through(proxy, migrated_pg)
        # A long batch wait gathers the burst below into one batch.
        service, stop, task = await start_ingest(
            via_proxy,
            mqtt_settings,
            influx_settings,
            client_id,
            retry_max_s=0.5,
            batch_wait_s=0.5,
            outbox_drain_interval_s=0.1,
        )
        writer = CutAfterWrite(service.pipeline._writer, proxy, asyncio.get_running_loop())
        try:
            panel = PANELS[0]
            async with make_client(mqtt_settings) as client:
                device = Publisher(client, mqtt_settings.topic_prefix)
                await device.send(panel, TopicKind.STATUS, panel.status())
                await service.wait_processed(1)
                service.pipeline.flusher._writer = writer  # the batches' points go through it
                # Heartbeats without a device timestamp: only the batch's single handling
                # keeps them from being counted twice (no redelivery guard applies).
                await device.raw(
                    f"{mqtt_settings.topic_prefix}/{panel.hostname}/heartbeat", b"\xff"
                )
                for i in range(heartbeats):
                    beat = panel.heartbeat(temperature=20.0 + i, uptime=200 + i, timestamp=0)
                    await device.send(panel, TopicKind.HEARTBEAT, beat)
                await service.wait_processed(2 + heartbeats, timeout_s=30)
                assert writer.cut.is_set(), "the batch's points were never written"
                await proxy.restore()
                await outbox_drained(db)
        finally:
            stop.set()
            await task
            await forget_session(mqtt_settings, client_id)
    assert service.failure is None
    totals = service.pipeline.totals
    assert (totals.device_messages, totals.accepted) == (2 + heartbeats, 1 + heartbeats)
    assert dict(totals.dead_letters) == {"undecodable": 1}
    assert db.execute("SELECT count(*) FROM dead_letters").fetchone() == (1,)
    assert total_received(db) == heartbeats
    row = db.execute("SELECT sum(written) FROM heartbeat_counts").fetchone()
    assert row is not None
    assert row[0] == heartbeats  # every temperature differs by a whole degree
    assert influx_point_count(influx_settings) == heartbeats
    assert outbox_size(db) == 0


async def test_kill_9_mid_stream_loses_no_telemetry_reading(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    db: psycopg.Connection[Any],
) -> None:
    """The same bar for devices of a declared type: SIGKILL during a stream of stamped JSON
    readings, a restart, and every reading is counted once with InfluxDB holding exactly
    the points written."""
    type_id = declare(db, VIBRATION)
    serials = [f"VIB-K{n:03d}" for n in range(20)]
    for serial in serials:
        add_device(db, serial, type_id)
    per_device = 150

    async def publish() -> int:
        async with make_client(mqtt_settings) as client:
            for i in range(per_device):
                for serial in serials:
                    payload = reading(serial, now_ms(), vibration=10.0 + (i % 7) * 0.3)
                    topic = f"{mqtt_settings.topic_prefix}/{serial}/telemetry"
                    await client.publish(topic, payload, qos=1)
        return per_device * len(serials)

    await kill_mid_stream_and_restart(
        migrated_pg,
        mqtt_settings,
        influx_settings,
        db,
        publish=publish,
        measurements=["telemetry"],
    )


async def test_kill_9_mid_stream_loses_no_robot_state(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    db: psycopg.Connection[Any],
) -> None:
    """Robots too: SIGKILL while robots stream stamped states (two parts each) and job
    reports, a restart, and every part reading is counted once, every point stored once,
    every job at its last report."""
    robots = [f"tonypi_k{n:02d}" for n in range(10)]
    per_robot = 120
    prefix = mqtt_settings.topic_prefix

    async def publish() -> int:
        async with make_client(mqtt_settings) as client:
            for i in range(per_robot):
                for robot in robots:
                    payload = robot_state(
                        robot,
                        now_ms(),
                        battery={"percentage": 90.0 - i * 0.6},
                        servos={"servo_1": {"temperature": 40.0 + (i % 9)}},
                    )
                    await client.publish(f"{prefix}/{robot}/robot", payload, qos=1)
                    if i % 10 == 0:
                        report = robot_job("J-1", robot, done=i // 10, total=20)
                        await client.publish(f"{prefix}/{robot}/job", report, qos=1)
        return per_robot * len(robots) * 2  # two parts per state

    async def jobs_settled() -> None:
        async with asyncio.timeout(30):
            while db.execute("SELECT min(items_done) FROM jobs").fetchone() != (11,):  # noqa: ASYNC110
                await asyncio.sleep(0.1)

    await kill_mid_stream_and_restart(
        migrated_pg,
        mqtt_settings,
        influx_settings,
        db,
        publish=publish,
        measurements=["battery", "servos"],
        settled=jobs_settled,
    )
    assert db.execute("SELECT count(*), count(DISTINCT robot_id) FROM jobs").fetchone() == (10, 10)
