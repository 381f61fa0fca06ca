"""Simulated telemetry devices: realistic, deterministic, and accepted whole by ingest."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter, defaultdict
from typing import Any

import psycopg

from fleetwatch.settings import InfluxSettings, MqttSettings, PostgresSettings
from ingest.contract import TopicScheme
from ingest.kinds.telemetry import checked_values, from_row
from simulator import Fleet, FleetOptions
from simulator.run import RunOptions, Simulator
from simulator.telemetry import shipped_types
from stores.postgres import device_types
from tests.ingest.conftest import forget_session, start_ingest
from tests.support.telemetry import declare

START_MS = 1_767_225_600_000  # 2026-01-01
DAY_MS = 86_400_000


def readings(telemetry: int, hours: float, seed: int = 3) -> list[dict[str, Any]]:
    fleet = Fleet(FleetOptions(devices=0, telemetry=telemetry, seed=seed), TopicScheme(), START_MS)
    stream = fleet.stream(START_MS + int(hours * 3_600_000))
    return [json.loads(emission.payload) for emission in stream]


def test_every_reading_passes_its_declared_type() -> None:
    """A simulated day of every shipped type: each reading names its type and passes it."""
    types = {t.name: t for t in shipped_types()}
    seen: Counter[str] = Counter()
    for body in readings(telemetry=6, hours=24):
        checked_values(types[body["device_type"]], body["metrics"])
        seen[body["device_type"]] += 1
    assert set(seen) == set(types)
    assert sum(seen.values()) == 6 * 24 * 360  # one reading every 10 s


def test_numbers_wander_drift_and_spike_within_range() -> None:
    """Over a day a number moves by several dead bands (walk, drift, spikes) but stays in
    its declared range; counters never go back; flags change now and then."""
    types = {t.name: t for t in shipped_types()}
    series: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for body in readings(telemetry=3, hours=24):
        for name, value in body["metrics"].items():
            series[(body["serial_number"], name)].append(value)
    for (serial, name), values in series.items():
        device_type = next(t for t in types.values() if t.name[:3].upper() == serial[:3])
        metric = device_type.kind.metric(name)
        if metric.type == "float":
            assert max(values) - min(values) > 3 * metric.threshold, (serial, name)
            low, high = metric.valid or (float("-inf"), float("inf"))
            assert low <= min(values) <= max(values) <= high
        elif metric.type == "int":
            assert values == sorted(values)
        else:
            assert len(set(values)) == 2, (serial, name)


def test_the_same_seed_gives_the_same_stream() -> None:
    """Determinism: same options and start, same bytes."""
    assert readings(telemetry=4, hours=1) == readings(telemetry=4, hours=1)
    assert readings(telemetry=4, hours=1) != readings(telemetry=4, hours=1, seed=4)


async def test_mixed_fleet_lands_in_postgres(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    db: psycopg.Connection[Any],
) -> None:
    """Panels, telemetry devices and robots in one run: telemetry devices register
    themselves through their types and robots by their first state, every reading is
    counted, jobs are recorded, nothing is dead-lettered."""
    for device_type in shipped_types():
        declare(db, device_type)
    stored = [from_row(row) for row in device_types.load(db)]
    assert {t.name for t in stored} == {t.name for t in shipped_types()}
    client_id = f"ingest-{uuid.uuid4().hex[:10]}"
    service, stop_ingest, ingest = await start_ingest(
        migrated_pg, mqtt_settings, influx_settings, client_id
    )
    options = FleetOptions(devices=5, telemetry=9, robots=2, seed=5)
    simulator = Simulator(mqtt_settings, options, RunOptions(speed=30, duration_s=300))
    try:
        stats = await asyncio.wait_for(simulator.run(asyncio.Event()), timeout=60)
        await service.wait_processed(stats.total, timeout_s=30)
    finally:
        stop_ingest.set()
        async with asyncio.timeout(20):
            await ingest
        await forget_session(mqtt_settings, client_id)
    assert db.execute("SELECT count(*) FROM dead_letters").fetchone() == (0,)
    kinds = dict(db.execute("SELECT kind, count(*) FROM devices GROUP BY kind").fetchall())
    assert kinds == {"panel": 5, "telemetry": 9, "robot": 2}
    robots = db.execute("SELECT robot_id, status FROM robots ORDER BY robot_id").fetchall()
    assert robots == [("tonypi_01", "online"), ("tonypi_02", "online")]
    (jobs,) = db.execute("SELECT count(*) FROM jobs").fetchone() or (0,)
    assert jobs >= 2
    (received,) = db.execute(
        "SELECT sum(c.received) FROM heartbeat_counts c JOIN devices d ON d.id = c.device_id "
        "WHERE d.kind = 'telemetry'"
    ).fetchone() or (0,)
    assert received == stats.published["telemetry"] > 0
