"""The transport boundary: a second transport beside MQTT, against the real services.

The second transport is ``LoopbackTransport`` (an in-process implementation of the protocol,
shaped like a connection-per-device transport); messages from it run through the real
decoding, handling, PostgreSQL and InfluxDB, and commands go back through it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from fleetwatch.settings import InfluxSettings, MqttSettings, PostgresSettings
from ingest.broker import make_client
from ingest.commands import CommandTiming
from ingest.contract import TopicKind, TopicScheme, pb
from ingest.dispatcher import CommandDispatcher
from ingest.service import IngestService
from ingest.transports import DeviceUnreachableError, MqttTransport, Transports
from tests.ingest.conftest import forget_session, start_ingest
from tests.ingest.loopback import LoopbackTransport
from tests.ingest.test_ingest_durability import through, total_received
from tests.ingest.test_loops import until
from tests.support.devices import FakePanel, Publisher, now_ms
from tests.support.fake_device import fake_device
from tests.support.stored import stored_points
from tests.support.tcp_proxy import TcpProxy

NEAR = FakePanel(41)  # connected on the loopback transport
FAR = FakePanel(42)  # on MQTT


class Running:
    """An ingest service serving MQTT and a loopback transport; timers driven by the test."""

    def __init__(self, service: IngestService, loopback: LoopbackTransport) -> None:
        self.service = service
        self.loopback = loopback


@pytest.fixture
async def running(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    ingest_client_id: str,
) -> AsyncIterator[Running]:
    loopback = LoopbackTransport()
    service, stop, task = await start_ingest(
        migrated_pg,
        mqtt_settings,
        influx_settings,
        ingest_client_id,
        transports=[loopback],
        command_tick_s=3600,
        liveness_interval_s=3600,
    )
    try:
        yield Running(service, loopback)
    finally:
        stop.set()
        await task
        await forget_session(mqtt_settings, ingest_client_id)


def command_status(db: psycopg.Connection[Any], hostname: str) -> list[str]:
    rows = db.execute(
        "SELECT c.status::text FROM command_log c JOIN devices d ON d.id = c.device_id "
        "WHERE d.hostname = %s ORDER BY c.id",
        [hostname],
    ).fetchall()
    return [row[0] for row in rows]


async def test_messages_of_both_transports_go_through_the_same_pipeline(
    running: Running,
    device: Publisher,
    db: psycopg.Connection[Any],
    influx_settings: InfluxSettings,
) -> None:
    """A panel on the loopback transport and one on MQTT are registered, counted and written
    to InfluxDB alike; the loopback panel's messages are acknowledged to it."""
    near = running.loopback.connect(NEAR.hostname)
    status = await near.send(TopicKind.STATUS, NEAR.status().SerializeToString())
    beat = await near.send(TopicKind.HEARTBEAT, NEAR.heartbeat().SerializeToString())
    await device.send(FAR, TopicKind.STATUS, FAR.status())
    await device.send(FAR, TopicKind.HEARTBEAT, FAR.heartbeat())
    await running.service.wait_processed(4)
    await near.acked(status)
    await near.acked(beat)
    rows = db.execute(
        "SELECT d.hostname, d.mac_address, s.is_online, h.received FROM devices d "
        "JOIN device_status s ON s.device_id = d.id "
        "JOIN heartbeat_counts h ON h.device_id = d.id ORDER BY d.hostname"
    ).fetchall()
    assert rows == [
        (NEAR.hostname, NEAR.mac, True, 1),
        (FAR.hostname, FAR.mac, True, 1),
    ]
    for panel in (NEAR, FAR):
        points = await asyncio.to_thread(
            stored_points, influx_settings, "heartbeat", hostname=panel.hostname
        )
        assert len(points) == 1, panel.hostname


async def test_a_bad_message_is_dead_lettered_under_its_address_and_the_stream_goes_on(
    running: Running, db: psycopg.Connection[Any]
) -> None:
    """Undecodable bytes and an address the transport's addressing cannot read become dead
    letters with that address; both are acknowledged and the next message is stored."""
    near = running.loopback.connect(NEAR.hostname)
    garbled = await near.send(TopicKind.HEARTBEAT, b"\xff")
    await running.loopback.receive(near, "no address", b"")
    await running.service.wait_processed(2)
    await near.acked(garbled)
    assert near.is_acked(2)
    letters = db.execute("SELECT topic, reason FROM dead_letters ORDER BY id").fetchall()
    assert letters == [
        (f"{NEAR.hostname}/heartbeat", "undecodable"),
        ("no address", "bad_topic"),
    ]
    await near.send(TopicKind.STATUS, NEAR.status().SerializeToString())
    await running.service.wait_processed(3)
    assert db.execute("SELECT hostname FROM devices").fetchall() == [(NEAR.hostname,)]


async def test_a_delivery_is_acknowledged_only_after_its_batch_committed(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    ingest_client_id: str,
    db: psycopg.Connection[Any],
) -> None:
    """While PostgreSQL is unreachable the loopback device's message stays unacknowledged;
    once it returns the message is committed, then acknowledged."""
    host = migrated_pg.database_url.hosts()[0]
    loopback = LoopbackTransport()
    async with TcpProxy(str(host["host"]), int(host["port"] or 5432)) as proxy:
        service, stop, task = await start_ingest(
            through(proxy, migrated_pg),
            mqtt_settings,
            influx_settings,
            ingest_client_id,
            transports=[loopback],
            retry_max_s=0.5,
        )
        try:
            near = loopback.connect(NEAR.hostname)
            await near.acked(await near.send(TopicKind.STATUS, NEAR.status().SerializeToString()))
            await proxy.cut()
            beat = await near.send(TopicKind.HEARTBEAT, NEAR.heartbeat().SerializeToString())
            await service.wait_store_retry()
            assert not near.is_acked(beat)
            assert total_received(db) == 0
            await proxy.restore()
            await near.acked(beat, timeout_s=30)
            assert total_received(db) == 1
        finally:
            stop.set()
            await task
            await forget_session(mqtt_settings, ingest_client_id)
    assert service.failure is None


async def test_commands_go_back_through_the_transport_their_device_is_on(
    running: Running, mqtt_settings: MqttSettings, db: psycopg.Connection[Any]
) -> None:
    """Each new panel's device-id sync goes out on its own transport (none of the loopback
    panel's on MQTT), and the loopback panel's replies complete its command."""
    scheme = TopicScheme(mqtt_settings.topic_prefix)
    marker = scheme.topic("marker", TopicKind.COMMAND)
    async with (
        fake_device(mqtt_settings, FAR) as far,
        make_client(mqtt_settings) as spy,
    ):
        await spy.subscribe(scheme.subscription(TopicKind.COMMAND), qos=1)
        near = running.loopback.connect(NEAR.hostname)
        await near.send(TopicKind.STATUS, NEAR.status().SerializeToString())
        await far.send(TopicKind.STATUS, FAR.status())
        await running.service.wait_processed(2)
        assert await running.service.dispatch_now() == 2

        kind, payload = await near.next_message()
        sync = pb.CommandEnvelope.FromString(payload)
        assert (kind, sync.WhichOneof("payload")) == (TopicKind.COMMAND, "set_device_id")
        assert (await far.next_command()).WhichOneof("payload") == "set_device_id"
        # Whatever ingest published on MQTT reached the broker before this marker did.
        await spy.publish(marker, b"", qos=1)
        seen = []
        async with asyncio.timeout(5):
            async for message in spy.messages:
                if str(message.topic) == marker:
                    break
                seen.append(str(message.topic))
        assert seen == [scheme.topic(FAR.hostname, TopicKind.COMMAND)]

        for stage in ("ACKNOWLEDGED", "COMPLETED"):
            reply = pb.CommandResponse(
                request_id=sync.request_id,
                sequence=sync.sequence,
                timestamp=now_ms(),
                stage=stage,
                success=True,
            )
            await near.send(TopicKind.RESPONSE, reply.SerializeToString())
        await running.service.wait_processed(4)
    assert command_status(db, NEAR.hostname) == ["COMPLETED"]
    assert command_status(db, FAR.hostname) == ["SENT"]


async def test_a_command_waits_while_its_device_is_unreachable(
    running: Running,
    device: Publisher,
    migrated_pg: PostgresSettings,
    db: psycopg.Connection[Any],
) -> None:
    """A command whose transport cannot reach its device stays PENDING while another
    device's is sent, and goes out once its device is connected."""
    other = LoopbackTransport("other")
    dispatcher = CommandDispatcher(str(migrated_pg.database_url), CommandTiming())
    route = Transports([other])
    try:
        for panel in (NEAR, FAR):
            await device.send(panel, TopicKind.STATUS, panel.status())
        await running.service.wait_processed(2)
        assert await dispatcher.send_due(route.send) == 0  # "other" is down
        async with other:
            far = other.connect(FAR.hostname)
            assert await dispatcher.send_due(route.send) == 1
            assert command_status(db, NEAR.hostname) == ["PENDING"]
            assert command_status(db, FAR.hostname) == ["SENT"]
            assert (await far.next_message())[0] == TopicKind.COMMAND
            near = other.connect(NEAR.hostname)
            assert await dispatcher.send_due(route.send) == 1
            assert (await near.next_message())[0] == TopicKind.COMMAND
        assert command_status(db, NEAR.hostname) == ["SENT"]
    finally:
        await asyncio.to_thread(dispatcher.close)


async def test_routes_prefer_the_transport_holding_the_device(
    mqtt_settings: MqttSettings,
) -> None:
    """A device a transport holds a connection to is routed there, any other to the first
    transport; a route whose transport is down is unreachable; names must be unique."""
    mqtt = MqttTransport(mqtt_settings)
    loopback = LoopbackTransport()
    route = Transports([mqtt, loopback])
    async with loopback:
        loopback.connect(NEAR.hostname)
        assert route.route(NEAR.hostname) is loopback
        assert route.route(FAR.hostname) is mqtt
        assert route.connected() == {"mqtt": False, "loopback": True}
        with pytest.raises(DeviceUnreachableError, match="mqtt is not connected"):
            await route.send(FAR.hostname, TopicKind.COMMAND, b"")
    with pytest.raises(ValueError, match=r"repeated: \['loopback'\]"):
        Transports([mqtt, loopback, LoopbackTransport()])
    with pytest.raises(ValueError, match="at least one transport"):
        Transports([])


async def test_the_mqtt_transport_reconnects_and_receives_what_was_sent_meanwhile(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    db: psycopg.Connection[Any],
) -> None:
    """After the broker connection drops, the same transport reconnects with its session and
    the heartbeats published while it was away are stored once."""
    client_id = f"ingest-{uuid.uuid4().hex[:10]}"
    async with TcpProxy(mqtt_settings.mqtt_host, mqtt_settings.mqtt_port) as proxy:
        via_proxy = mqtt_settings.model_copy(
            update={"mqtt_host": "127.0.0.1", "mqtt_port": proxy.port}
        )
        service, stop, task = await start_ingest(
            migrated_pg,
            via_proxy,
            influx_settings,
            client_id,
            retry_initial_s=0.05,
            retry_max_s=0.2,
        )
        try:
            async with make_client(mqtt_settings) as client:
                device = Publisher(client, mqtt_settings.topic_prefix)
                await device.send(FAR, TopicKind.STATUS, FAR.status())
                await service.wait_processed(1)
                await proxy.cut()
                await until(lambda: not service.connected.is_set())
                for uptime in range(3):
                    await device.send(FAR, TopicKind.HEARTBEAT, FAR.heartbeat(uptime=uptime))
                await proxy.restore()
                await service.wait_processed(4, timeout_s=30)
        finally:
            stop.set()
            await task
            await forget_session(mqtt_settings, client_id)
    assert total_received(db) == 3
    assert service.failure is None
