"""Ingest workers sharing the bridged stream: every message once, each device's in order,
with all of Kafka up and with one of three brokers killed mid-stream."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg

from fleetwatch.settings import InfluxSettings, MqttSettings, PostgresSettings
from tests.kafka.scale import (
    Sent,
    counted,
    kafka_settings,
    publish_mixed,
    running_bridge,
    running_worker,
    same_counts,
    stored,
    wait_counted,
)
from tests.support.kafka_cluster import KafkaCluster
from tests.support.outbox import outbox_drained
from tests.support.stored import count_points


async def test_two_workers_share_the_stream(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    db: psycopg.Connection[Any],
    kafka_service: str,
) -> None:
    """Each worker takes its partitions' devices; together they store everything once."""
    kafka = kafka_settings(kafka_service)
    pg, mqtt, influx = migrated_pg, mqtt_settings, influx_settings
    sent = Sent()
    async with (
        running_bridge(mqtt, kafka),
        running_worker(pg, mqtt, influx, kafka, "a") as a,
        running_worker(pg, mqtt, influx, kafka, "b") as b,
    ):
        await publish_mixed(mqtt, 30, sent)
        await wait_counted(db, sent.heartbeats, timeout_s=60)
        await outbox_drained(db)
        shares = [w.transports.default.positions for w in (a, b)]
        assert all(s is not None and s.share is not None for s in shares)
        assert a.pipeline.totals.device_messages > 0
        assert b.pipeline.totals.device_messages > 0
    assert same_counts(stored(db), sent)
    _, written = counted(db)
    assert count_points(influx_settings, ["heartbeat"]) == written


async def test_one_of_three_brokers_killed_mid_stream(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    db: psycopg.Connection[Any],
    kafka_cluster: KafkaCluster,
) -> None:
    """Three replicas, two needed: the node leading most partitions dies, its partitions'
    leadership moves, and the bridge and the workers carry on without a loss or a double."""
    kafka = kafka_settings(kafka_cluster.bootstrap, partitions=6, replication=3)
    pg, mqtt, influx = migrated_pg, mqtt_settings, influx_settings
    sent = Sent()
    async with (
        running_bridge(mqtt, kafka),
        running_worker(pg, mqtt, influx, kafka, "a"),
        running_worker(pg, mqtt, influx, kafka, "b"),
    ):
        stream = asyncio.create_task(publish_mixed(mqtt, 200, sent, round_pause_s=0.03))
        await wait_counted(db, 1000, timeout_s=60)
        leaders = kafka_cluster.partition_leaders(kafka.kafka_topic)
        busiest = max(set(leaders.values()), key=list(leaders.values()).count)
        kafka_cluster.kill(busiest)
        at_kill = counted(db)[0]
        await stream
        await wait_counted(db, sent.heartbeats, timeout_s=90)
        await outbox_drained(db)
        await asyncio.sleep(1)  # a duplicate, had there been one, would land now
    assert at_kill < sent.heartbeats, "the kill came too late to prove anything"
    assert same_counts(stored(db), sent)
    _, written = counted(db)
    assert count_points(influx_settings, ["heartbeat"]) == written
