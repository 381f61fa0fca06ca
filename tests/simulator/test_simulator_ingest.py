"""A simulated fleet through the real broker into a real ingest service."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from typing import Any

import psycopg

from fleetwatch.settings import InfluxSettings, MqttSettings, PostgresSettings
from simulator import Behaviour, FleetOptions
from simulator.run import RunOptions, Simulator
from tests.ingest.conftest import forget_session, start_ingest

DEVICES = 20


def scalar(db: psycopg.Connection[Any], query: str) -> int:
    row = db.execute(query).fetchone()
    assert row is not None, query
    return int(row[0])


async def test_simulated_fleet_lands_in_postgres(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    db: psycopg.Connection[Any],
    busy: Behaviour,
) -> None:
    """Twenty panels for five simulated minutes: all registered, every heartbeat counted,
    alarms and last wills recorded, ids synced (but for the out-of-sync panels), no dead
    letters."""
    client_id = f"ingest-{uuid.uuid4().hex[:10]}"
    service, stop_ingest, ingest = await start_ingest(
        migrated_pg, mqtt_settings, influx_settings, client_id
    )
    reliable = replace(busy, command_silence=0.0, command_failure=0.0)
    options = FleetOptions(devices=DEVICES, seed=17, behaviour=reliable)
    simulator = Simulator(mqtt_settings, options, RunOptions(speed=30, duration_s=300))
    try:
        stats = await asyncio.wait_for(simulator.run(asyncio.Event()), timeout=60)
        await service.wait_processed(stats.total, timeout_s=30)
    finally:
        stop_ingest.set()
        async with asyncio.timeout(20):
            await ingest
        await forget_session(mqtt_settings, client_id)
    assert scalar(db, "SELECT count(*) FROM dead_letters") == 0
    assert scalar(db, "SELECT count(*) FROM devices") == DEVICES
    received = scalar(db, "SELECT coalesce(sum(received), 0) FROM heartbeat_counts")
    assert received == stats.published["heartbeat"]
    assert stats.published["alarm"] > 0
    assert scalar(db, "SELECT count(*) FROM alarm_events WHERE alarm_type <> 'UNKNOWN'") > 0
    wills = scalar(db, "SELECT count(*) FROM device_connection_log WHERE event = 'disconnected'")
    assert wills == stats.published["lwt"]
    unsynced = {
        row[0]
        for row in db.execute(
            "SELECT d.hostname FROM devices d JOIN device_status s ON s.device_id = d.id "
            "WHERE NOT s.device_synced"
        )
    }
    assert simulator.fleet.out_of_sync <= unsynced
    # A panel that never lost its connection had all the time it needed to adopt its id.
    assert len(unsynced) <= len(simulator.fleet.out_of_sync) + stats.published["lwt"]
