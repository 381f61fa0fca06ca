"""The TonyPi robot (seed 004) as declared kinds: one per part of the robot's state.

A robot reports its battery, performance (CPU, memory, disk), IMU, each servo and each
environmental sensor; each is a history of its own (a *stream*), CDC-thinned by its part's
declaration and written to seed 004's measurement. The dead bands, and why:

* battery: 0.1 V and 1 % (a cell's reading wanders by less; a discharge curve is followed
  to the percent), 0.2 A (load steps of a gait are larger), charging on any change;
* performance: CPU 5 %, memory 2 %, disk 1 % (scheduling noise swings CPU by a few percent);
* servos: position 20 of 4096 steps (1.8°, the backlash of a hobby servo), temperature 1 °C,
  load 5 %, voltage 0.2 V, speed 10;
* IMU: acceleration 0.5 m/s², rotation 10 °/s, field 5 µT. The IMU is noisy: walking shakes
  the accelerometer by a few tenths of a m/s² and the gyroscope by several °/s. These bands
  keep posture and heading changes, a fall (gravity moving to another axis: 9.8 m/s²), a
  turn, a pick-up; they lose the gait's oscillation and vibration, which a thinned history
  cannot carry anyway (it needs the raw sample rate, not a point per change);
* sensors: each ``sensor_type`` is a stream; its value's dead band is 0.5 in its unit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from ingest.kinds.declare import ChangeType, DeviceKind, Metric
from ingest.kinds.registry import register

KIND: Final = "robot"
INSTANCE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
MAX_INSTANCES: Final = 32  # servos, or sensors, of one robot


def _number(
    name: str, unit: str, valid: tuple[float, float], band: float, *, kind: str = "float"
) -> Metric:
    return Metric(name=name, unit=unit, type=kind, valid=valid, dead_band=band)  # type: ignore[arg-type]


def _axes(prefix: str, unit: str, limit: float, band: float) -> tuple[Metric, ...]:
    return tuple(_number(f"{prefix}_{axis}", unit, (-limit, limit), band) for axis in "xyz")


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a robot's state: its JSON section, measurement and declaration.

    Attributes:
        section: the key in the robot's message (``battery``, ``servos``, ...).
        measurement: seed 004's InfluxDB measurement.
        kind: the declaration its values are checked and thinned by.
        instance_tag: for parts with several instances (servos, sensors), the tag that
            names one; None for a part the robot has once.
    """

    section: str
    measurement: str
    kind: DeviceKind
    instance_tag: str | None = None

    def stream(self, instance: str | None = None) -> str:
        """The stream name of the part (and instance): ``battery``, ``servos/servo_1``."""
        return self.section if instance is None else f"{self.section}/{instance}"


def _part(section: str, title: str, metrics: tuple[Metric, ...], tag: str | None = None) -> Part:
    kind = register(
        DeviceKind(name=f"{KIND}_{section}", title=title, metrics=metrics, measurement=section)
    )
    return Part(section, section, kind, tag)


BATTERY = _part(
    "battery",
    "Robot battery",
    (
        _number("voltage", "V", (0.0, 30.0), 0.1),
        _number("percentage", "%", (0.0, 100.0), 1.0),
        _number("current", "A", (-50.0, 50.0), 0.2),
        Metric(name="charging", type="bool", category=ChangeType.STATE_CHANGE),
    ),
)
PERFORMANCE = _part(
    "performance",
    "Robot performance",
    (
        _number("cpu_percent", "%", (0.0, 100.0), 5.0),
        _number("memory_percent", "%", (0.0, 100.0), 2.0),
        _number("disk_percent", "%", (0.0, 100.0), 1.0),
    ),
)
SERVOS = _part(
    "servos",
    "Robot servo",
    (
        _number("position", "", (0, 4095), 20, kind="int"),
        _number("temperature", "°C", (-20.0, 150.0), 1.0),
        _number("load", "%", (0.0, 100.0), 5.0),
        _number("voltage", "V", (0.0, 20.0), 0.2),
        _number("speed", "", (-10_000, 10_000), 10, kind="int"),
    ),
    tag="servo_id",
)
IMU = _part(
    "imu",
    "Robot IMU",
    (
        *_axes("accel", "m/s²", 160.0, 0.5),
        *_axes("gyro", "°/s", 2000.0, 10.0),
        *_axes("mag", "µT", 5000.0, 5.0),
    ),
)
SENSORS = _part(
    "sensors",
    "Robot sensor",
    (_number("value", "", (-1e9, 1e9), 0.5),),
    tag="sensor_type",
)
PARTS: Final = {part.section: part for part in (BATTERY, PERFORMANCE, SERVOS, IMU, SENSORS)}
