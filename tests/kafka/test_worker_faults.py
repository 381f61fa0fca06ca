"""Workers killed, added and removed while a stream flows: every message counted once.

The workers are ``fleetwatch ingest --source kafka`` child processes, so a kill is a real
SIGKILL; the bridge runs in the test's process. After each scenario PostgreSQL holds every
heartbeat once (a device's heartbeat handled out of order would be taken for a redelivery
and not counted, so the exact count also proves each device's order), every alarm event
and dead letter once, and InfluxDB every point heartbeat_counts says was written.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg

from fleetwatch.settings import InfluxSettings, MqttSettings, PostgresSettings
from tests.kafka.scale import (
    Sent,
    child_env,
    counted,
    kafka_settings,
    publish_mixed,
    running_bridge,
    same_counts,
    stored,
    wait_counted,
)
from tests.support.outbox import outbox_drained
from tests.support.processes import child
from tests.support.stored import count_points

ROUNDS = 300  # 6,000 heartbeats from 20 panels
ASSIGNED = "assigned partitions"


async def test_a_worker_killed_one_added_and_one_removed_mid_stream(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    db: psycopg.Connection[Any],
    kafka_service: str,
) -> None:
    kafka = kafka_settings(kafka_service, partitions=6)
    env = child_env(migrated_pg, mqtt_settings, influx_settings, kafka)
    worker = ["ingest", "--source", "kafka", "--batch-size", "200", "--worker"]
    expected = ROUNDS * 20
    sent = Sent()
    async with running_bridge(mqtt_settings, kafka) as bridge:
        with child([*worker, "a"], env, ASSIGNED) as a, child([*worker, "b"], env, ASSIGNED) as b:
            stream = asyncio.create_task(
                publish_mixed(mqtt_settings, ROUNDS, sent, round_pause_s=0.05)
            )
            await wait_counted(db, expected // 4, timeout_s=60)
            a.kill()  # SIGKILL: its batch in progress never commits
            a.wait(timeout=10)
            at_kill = counted(db)[0]
            await wait_counted(db, expected // 2, timeout_s=60)
            with child([*worker, "c"], env, ASSIGNED):
                await wait_counted(db, 3 * expected // 4, timeout_s=60)
                b.terminate()  # a worker leaving the group in good order
                b.wait(timeout=60)
                await stream
                await wait_counted(db, expected, timeout_s=90)
                await outbox_drained(db)
                await asyncio.sleep(1)  # a duplicate, had there been one, would land now
        forwarded = bridge.totals.forwarded
    assert at_kill < expected, "the kill came too late to prove anything"
    assert same_counts(stored(db), sent)
    _, written = counted(db)
    assert count_points(influx_settings, ["heartbeat"]) == written
    positions = db.execute("SELECT sum(next_offset) FROM stream_offsets").fetchone()
    # Every record the bridge wrote (statuses and the commands ingest sent back too) was
    # read and committed: the positions add up to the topic's length.
    assert positions == (forwarded,)
    assert forwarded >= sent.messages
