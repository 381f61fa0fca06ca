"""Bridges and ingest workers for the scale-out tests: in this process or as child processes."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg

from fleetwatch.settings import InfluxSettings, KafkaSettings, MqttSettings, PostgresSettings
from ingest.bridge import Bridge
from ingest.broker import make_client
from ingest.contract import TopicKind, pb
from ingest.service import IngestOptions, IngestService
from ingest.transports.kafka import KafkaTransport
from tests.ingest.conftest import forget_session
from tests.support.devices import FakePanel, Publisher, now_ms


def kafka_settings(bootstrap: str, partitions: int = 6, replication: int = 1) -> KafkaSettings:
    """A topic and a consumer group of the test's own."""
    tag = uuid.uuid4().hex[:10]
    return KafkaSettings(
        kafka_bootstrap_servers=bootstrap,
        kafka_topic=f"t_devices_{tag}",
        kafka_partitions=partitions,
        kafka_replication=replication,
        kafka_group=f"t_ingest_{tag}",
    )


@asynccontextmanager
async def running_bridge(
    mqtt: MqttSettings, kafka: KafkaSettings, max_pending: int = 50_000
) -> AsyncIterator[Bridge]:
    """A bridge in this process, connected to the broker, until the block ends."""
    client_id = f"bridge-{uuid.uuid4().hex[:8]}"
    bridge = Bridge(
        mqtt, kafka, client_id=client_id, max_pending=max_pending, health=("127.0.0.1", 0)
    )
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))
    try:
        waiting = asyncio.create_task(bridge.connected.wait())
        async with asyncio.timeout(60):
            await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        yield bridge
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await task
        await forget_session(mqtt, client_id)  # the bridge's session goes with it


@asynccontextmanager
async def running_worker(
    pg: PostgresSettings,
    mqtt: MqttSettings,
    influx: InfluxSettings,
    kafka: KafkaSettings,
    name: str,
    **options: Any,  # noqa: ANN401 - IngestOptions fields
) -> AsyncIterator[IngestService]:
    """An ingest worker in this process, once it owns partitions, until the block ends."""
    stream = KafkaTransport(kafka, mqtt, str(pg.database_url), worker=name)
    opts = IngestOptions(**{"batch_wait_s": 0.02, "batch_size": 500, **options})
    service = IngestService(pg, None, influx, opts, transports=[stream])
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        async with asyncio.timeout(60):
            while stream.positions.share is None and not task.done():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        if task.done():
            task.result()
        yield service
    finally:
        stop.set()
        async with asyncio.timeout(60):
            await task


def child_env(
    pg: PostgresSettings, mqtt: MqttSettings, influx: InfluxSettings, kafka: KafkaSettings
) -> dict[str, str]:
    """The environment of a ``fleetwatch`` child process on the test's services."""
    return {
        **os.environ,
        "FLEETWATCH_DATABASE_URL": str(pg.database_url),
        "FLEETWATCH_MQTT_HOST": mqtt.mqtt_host,
        "FLEETWATCH_MQTT_PORT": str(mqtt.mqtt_port),
        "FLEETWATCH_TOPIC_PREFIX": mqtt.topic_prefix,
        "FLEETWATCH_INFLUX_URL": influx.influx_url,
        "FLEETWATCH_INFLUX_TOKEN": influx.influx_token.get_secret_value(),
        "FLEETWATCH_INFLUX_ORG": influx.influx_org,
        "FLEETWATCH_INFLUX_BUCKET": influx.influx_bucket,
        "FLEETWATCH_KAFKA_BOOTSTRAP_SERVERS": kafka.kafka_bootstrap_servers,
        "FLEETWATCH_KAFKA_TOPIC": kafka.kafka_topic,
        "FLEETWATCH_KAFKA_PARTITIONS": str(kafka.kafka_partitions),
        "FLEETWATCH_KAFKA_REPLICATION": str(kafka.kafka_replication),
        "FLEETWATCH_KAFKA_GROUP": kafka.kafka_group,
        "FLEETWATCH_HEALTH_PORT": "0",
    }


async def readiness(bridge: Bridge) -> tuple[int, dict[str, Any]]:
    """The status and body of the bridge's /readyz."""
    assert bridge.health is not None
    url = f"http://127.0.0.1:{bridge.health.port}/readyz"

    def get() -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as refused:
            return refused.code, json.loads(refused.read())

    return await asyncio.to_thread(get)


def counted(db: psycopg.Connection[Any]) -> tuple[int, int]:
    """Heartbeats received and points written, by heartbeat_counts."""
    row = db.execute(
        "SELECT coalesce(sum(received), 0), coalesce(sum(written), 0) FROM heartbeat_counts"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def wait_counted(db: psycopg.Connection[Any], received: int, timeout_s: float) -> None:
    """Poll until ``received`` heartbeats are committed (other processes: no event)."""
    async with asyncio.timeout(timeout_s):
        while counted(db)[0] < received:  # noqa: ASYNC110
            await asyncio.sleep(0.1)


@dataclass(slots=True)
class Sent:
    """What a stream published, to compare with what was stored; a stream published in
    several parts goes on where the last part ended (rounds, device times)."""

    heartbeats: int = 0
    alarms: int = 0  # ACTIVE alarms, each opening one event
    rejected: int = 0  # bad payloads, each one dead letter
    rounds: int = 0
    # Device time of round 0: far enough back that a long stream stays in the past.
    base_ms: int = field(default_factory=lambda: now_ms() - 3_600_000)

    @property
    def messages(self) -> int:
        return self.heartbeats + 2 * self.alarms + self.rejected


PANELS = [FakePanel(n) for n in range(1, 21)]


async def publish_mixed(
    mqtt: MqttSettings, rounds: int, sent: Sent, *, round_pause_s: float = 0.0
) -> Sent:
    """Every panel's status (at the start of a stream), then ``rounds`` of a heartbeat from
    each panel (device times one second apart and increasing: a device's message handled
    out of order would be taken for a redelivery and not counted), now and then an alarm
    raised and cleared, and a payload that cannot be decoded; counts into ``sent``."""
    base = sent.base_ms
    async with make_client(mqtt) as client:
        device = Publisher(client, mqtt.topic_prefix)
        if sent.rounds == 0:
            for panel in PANELS:
                await device.send(panel, TopicKind.STATUS, panel.status(timestamp=base))
        for i in range(sent.rounds, sent.rounds + rounds):
            sent.rounds = i + 1
            at = base + (i + 1) * 1000
            for panel in PANELS:
                await device.send(
                    panel,
                    TopicKind.HEARTBEAT,
                    panel.heartbeat(temperature=20.0 + (i % 9) * 0.4, uptime=100 + i, timestamp=at),
                )
                sent.heartbeats += 1
            if i % 10 == 5:
                panel = PANELS[i % len(PANELS)]
                for state, step in ((pb.AlarmEvent.ACTIVE, 0), (pb.AlarmEvent.INACTIVE, 1)):
                    alarm = panel.alarm(2 * i + step, state=state, timestamp=at + step)
                    await device.send(panel, TopicKind.ALARM, alarm)
                sent.alarms += 1
            if i % 50 == 25:
                topic = f"{mqtt.topic_prefix}/{PANELS[0].hostname}/heartbeat"
                await device.raw(topic, b"\xff not a heartbeat " + str(i).encode())
                sent.rejected += 1
            if round_pause_s:
                await asyncio.sleep(round_pause_s)
    return sent


def stored(db: psycopg.Connection[Any]) -> Sent:
    """What PostgreSQL holds, in the same terms."""
    received, _ = counted(db)
    alarms = db.execute("SELECT count(*) FROM alarm_events").fetchone()
    dead = db.execute("SELECT count(*) FROM dead_letters").fetchone()
    assert alarms is not None
    assert dead is not None
    return Sent(received, int(alarms[0]), int(dead[0]))


def same_counts(a: Sent, b: Sent) -> bool:
    """Whether two streams count the same messages of each kind."""
    return (a.heartbeats, a.alarms, a.rejected) == (b.heartbeats, b.alarms, b.rejected)
