"""Device types, devices and JSON readings of telemetry devices, for tests."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import psycopg

from fleetwatch.settings import InfluxSettings
from ingest.kinds.telemetry import KIND, DeviceType, metric, to_row
from stores.postgres import device_types
from tests.support.stored import stored_points

VIBRATION = DeviceType(
    name="vibration_sensor",
    description="machine vibration and housing temperature",
    metrics=(
        metric("vibration", unit="mm/s", minimum=0, maximum=100, dead_band=0.5),
        metric("temperature", unit="°C", minimum=-40, maximum=150, dead_band=0.5),
        metric("running", type="bool"),
    ),
)


def declare(db: psycopg.Connection[Any], device_type: DeviceType = VIBRATION) -> UUID:
    """Store ``device_type``; its id."""
    return device_types.create(db, to_row(device_type))


def add_device(db: psycopg.Connection[Any], serial: str, type_id: UUID) -> int:
    """A device of the type, addressed by ``serial``; its id."""
    return device_types.add_device(db, KIND, serial, type_id)


def reading(serial: str, timestamp: int | None = None, **metrics: object) -> bytes:
    """Seed 002's JSON payload."""
    body: dict[str, object] = {"version": "0.0.1", "serial_number": serial, "metrics": metrics}
    if timestamp is not None:
        body["timestamp"] = timestamp
    return json.dumps(body).encode()


def telemetry_points(influx: InfluxSettings, serial: str) -> list[dict[str, Any]]:
    """The device's stored points, oldest first, one row per point with every field."""
    return stored_points(influx, "telemetry", hostname=serial)
