"""The CDC rules, end to end: heartbeats through the broker, points read back with Flux."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from fleetwatch.settings import InfluxSettings
from ingest.contract import TopicKind, pb
from ingest.service import IngestService
from tests.ingest.test_ingest_flows import heartbeat_points
from tests.support.devices import FakePanel, Publisher

PANEL = FakePanel(7)
START = datetime.now(UTC) - timedelta(hours=2)


def at(seconds: float) -> int:
    """A device timestamp ``seconds`` after START (the device clock drives the history)."""
    return int((START + timedelta(seconds=seconds)).timestamp() * 1000)


async def send_series(
    ingest: IngestService, device: Publisher, readings: list[dict[str, Any]], step_s: float = 10
) -> None:
    await device.send(PANEL, TopicKind.STATUS, PANEL.status())
    for i, values in enumerate(readings):
        heartbeat = PANEL.heartbeat(timestamp=at(i * step_s), **values)
        await device.send(PANEL, TopicKind.HEARTBEAT, heartbeat)
    await ingest.wait_processed(1 + len(readings))


@pytest.mark.parametrize(
    ("field", "base", "at_threshold", "below"),
    [
        ("temperature", 20.0, 20.5, 20.45),
        ("humidity", 40.0, 38.0, 38.5),
        ("fan_pwm_duty", 30, 35, 34),
    ],
)
async def test_threshold_writes_and_just_below_does_not(
    ingest: IngestService,
    device: Publisher,
    influx_settings: InfluxSettings,
    field: str,
    base: float,
    at_threshold: float,
    below: float,
) -> None:
    """A move of exactly the threshold is stored; a move just below it is not."""
    await send_series(ingest, device, [{field: base}, {field: below}, {field: at_threshold}])
    points = heartbeat_points(influx_settings)
    assert [round(p[field], 2) for p in points] == [base, at_threshold]
    assert points[1]["change_type"] == "SENSOR_DATA"


async def test_slow_drift_is_caught(
    ingest: IngestService, device: Publisher, influx_settings: InfluxSettings
) -> None:
    """0.1 °C per heartbeat never moves 0.5 between messages but is stored every 5 steps."""
    temps = [round(20.0 + 0.1 * i, 1) for i in range(16)]
    await send_series(ingest, device, [{"temperature": t} for t in temps])
    stored = [round(p["temperature"], 1) for p in heartbeat_points(influx_settings)]
    assert stored == [20.0, 20.5, 21.0, 21.5]


async def test_quiet_device_gets_a_periodic_point(
    ingest: IngestService, device: Publisher, influx_settings: InfluxSettings
) -> None:
    """With nothing changing, a point is still stored once 5 minutes of device time passed."""
    await send_series(ingest, device, [{} for _ in range(12)], step_s=60)
    points = heartbeat_points(influx_settings)
    assert [p["change_type"] for p in points] == ["PERIODIC", "PERIODIC", "PERIODIC"]
    times = [p["_time"] for p in points]
    assert [(b - a).total_seconds() for a, b in itertools.pairwise(times)] == [300, 300]


async def test_io_and_state_changes_are_classified(
    ingest: IngestService,
    device: Publisher,
    influx_settings: InfluxSettings,
    db: psycopg.Connection[Any],
) -> None:
    """I/O flips are ALARM, a state change is STATE_CHANGE, both at once are MULTIPLE."""
    await send_series(ingest, device, [{}, {"siren": True}])
    await device.send(PANEL, TopicKind.STATUS, PANEL.status(state=pb.StatusMessage.MAINTENANCE))
    await device.send(PANEL, TopicKind.HEARTBEAT, PANEL.heartbeat(timestamp=at(30), siren=True))
    await device.send(
        PANEL, TopicKind.HEARTBEAT, PANEL.heartbeat(timestamp=at(40), panic2=True, temperature=25)
    )
    await ingest.wait_processed(6)
    kinds = [p["change_type"] for p in heartbeat_points(influx_settings)]
    assert kinds == ["PERIODIC", "ALARM", "STATE_CHANGE", "MULTIPLE"]
    assert db.execute("SELECT sum(received), sum(written) FROM heartbeat_counts").fetchone() == (
        4,
        4,
    )
