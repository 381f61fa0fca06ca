"""JSON messages of a robot (seed 004), for tests."""

from __future__ import annotations

import json
from typing import Any

ROBOT = "tonypi_01"


def state(robot: str = ROBOT, timestamp: int | None = None, **sections: Any) -> bytes:  # noqa: ANN401
    """A robot's state message with the given sections (battery, servos, ...)."""
    body: dict[str, Any] = {"robot_id": robot, **sections}
    if timestamp is not None:
        body["timestamp"] = timestamp
    return json.dumps(body).encode()


def job(
    key: str,
    robot: str = ROBOT,
    *,
    done: int,
    total: int | None = 10,
    status: str = "active",
    item: dict[str, Any] | None = None,
    timestamp: int | None = None,
) -> bytes:
    """A robot's report on job ``key``."""
    body: dict[str, Any] = {"robot_id": robot, "job_id": key, "items_done": done, "status": status}
    if total is not None:
        body["items_total"] = total
    if item is not None:
        body["last_item"] = item
    if timestamp is not None:
        body["timestamp"] = timestamp
    return json.dumps(body).encode()


FULL = {
    "battery": {"voltage": 12.3, "percentage": 85.5, "current": 1.2, "charging": False},
    "performance": {"cpu_percent": 45.2, "memory_percent": 62.1, "disk_percent": 40.0},
    "servos": {
        "servo_1": {
            "position": 2048,
            "temperature": 45.2,
            "load": 20.0,
            "voltage": 7.4,
            "speed": 0,
        },
        "servo_2": {
            "position": 1000,
            "temperature": 40.0,
            "load": 10.0,
            "voltage": 7.4,
            "speed": 0,
        },
    },
    "imu": {
        "accel_x": 0.1,
        "accel_y": -0.2,
        "accel_z": 9.8,
        "gyro_x": 0.0,
        "gyro_y": 0.0,
        "gyro_z": 0.0,
        "mag_x": 20.0,
        "mag_y": 5.0,
        "mag_z": -40.0,
    },
    "sensors": [{"sensor_type": "temperature", "unit": "°C", "value": 42.5}],
    "location": {"x": 1.0, "y": 2.0, "z": 0.0, "heading": 90.0},
    "ip_address": "192.0.2.40",
}
