"""The bridge killed, and Kafka away, while devices publish: nothing lost, nothing doubled.

The bridge acknowledges a message to the broker only after Kafka has it. Killed, it leaves
the unacknowledged messages in its persistent session; the broker sends them again (flagged
DUP) to the next bridge, which may write some to Kafka a second time; the worker recognises
those already stored. While Kafka is away, the bridge holds its acknowledgements and the
broker keeps the backlog.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pytest

from fleetwatch.settings import InfluxSettings, MqttSettings, PostgresSettings
from tests.ingest.conftest import forget_session
from tests.kafka.scale import (
    Sent,
    child_env,
    counted,
    kafka_settings,
    publish_mixed,
    readiness,
    running_bridge,
    running_worker,
    same_counts,
    stored,
    wait_counted,
)
from tests.support.kafka_cluster import KafkaCluster, kafka_libs
from tests.support.outbox import outbox_drained
from tests.support.processes import child
from tests.support.stored import count_points

ROUNDS = 200  # 4,000 heartbeats from 20 panels


async def test_the_bridge_killed_mid_stream_loses_and_doubles_nothing(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    db: psycopg.Connection[Any],
    kafka_service: str,
) -> None:
    kafka = kafka_settings(kafka_service, partitions=4)
    env = child_env(migrated_pg, mqtt_settings, influx_settings, kafka)
    client_id = f"bridge-{uuid.uuid4().hex[:8]}"
    bridge = ["bridge", "--client-id", client_id]
    expected, sent = ROUNDS * 20, Sent()
    try:
        async with running_worker(migrated_pg, mqtt_settings, influx_settings, kafka, "w"):
            with child(bridge, env, "bridging") as first:
                stream = asyncio.create_task(
                    publish_mixed(mqtt_settings, ROUNDS, sent, round_pause_s=0.03)
                )
                await wait_counted(db, expected // 3, timeout_s=60)
                first.kill()
                first.wait(timeout=10)
            at_kill = counted(db)[0]
            await asyncio.sleep(1)  # the devices go on publishing into the bridge's session
            with child(bridge, env, "bridging"):
                await stream
                await wait_counted(db, expected, timeout_s=90)
                await outbox_drained(db)
                await asyncio.sleep(1)  # a duplicate, had there been one, would land now
    finally:
        await forget_session(mqtt_settings, client_id)
    assert at_kill < expected, "the kill came too late to prove anything"
    assert same_counts(stored(db), sent)
    _, written = counted(db)
    assert count_points(influx_settings, ["heartbeat"]) == written


@pytest.mark.timeout(240)
async def test_kafka_away_for_a_minute_holds_the_backlog_in_the_broker(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    db: psycopg.Connection[Any],
) -> None:
    """Kafka (one node) killed for a minute mid-stream: the bridge stops acknowledging, reads
    no more than its bound, the broker keeps the rest; all of it arrives once Kafka is back."""
    bound = 200
    with KafkaCluster(kafka_libs(), nodes=1) as cluster:
        kafka = kafka_settings(cluster.bootstrap, partitions=3)
        pg, mqtt, influx = migrated_pg, mqtt_settings, influx_settings
        sent = Sent()
        async with (
            running_bridge(mqtt, kafka, max_pending=bound) as bridge,
            running_worker(pg, mqtt, influx, kafka, "w"),
        ):
            await publish_mixed(mqtt, 20, sent)
            await wait_counted(db, sent.heartbeats, timeout_s=30)
            before = sent.heartbeats
            cluster.kill(1)
            away_since = asyncio.get_running_loop().time()
            acknowledged = bridge.totals.acknowledged
            # 1,200 heartbeats while Kafka is away, then wait out the minute.
            await publish_mixed(mqtt, 60, sent, round_pause_s=0.1)
            await asyncio.sleep(max(0.0, 60 - (asyncio.get_running_loop().time() - away_since)))
            assert bridge.totals.acknowledged == acknowledged  # nothing passed on: nothing acked
            held = bridge.totals.received - bridge.totals.forwarded
            assert 0 < held <= bound + 100  # the bound, plus at most one socket read over it
            assert counted(db)[0] == before
            status, body = await readiness(bridge)  # Kafka has kept it waiting past 30 s
            assert (status, body["checks"]) == (503, {"broker": True, "kafka": False})
            cluster.start(1)
            await wait_counted(db, sent.heartbeats, timeout_s=90)
            assert (await readiness(bridge))[0] == 200
            await outbox_drained(db)
            await asyncio.sleep(1)
    assert same_counts(stored(db), sent)
    _, written = counted(db)
    assert count_points(influx_settings, ["heartbeat"]) == written
