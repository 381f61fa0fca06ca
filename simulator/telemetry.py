"""Simulated telemetry devices: sensors of declared types publishing seed 002's JSON.

Each device is of one of the shipped device types (``simulator/device_types.toml``) and reads
its metrics from that declaration. A number follows a mean-reverting random walk around the
device's own operating point (a machine's vibration, a line's pressure), drifts slowly (wear,
fouling) and now and then spikes for one reading (a knock, a water hammer); an integer is a
running counter (operating hours); a flag holds for a random stretch and flips. Readings name
their type, so the devices register themselves where the type allows it.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ingest.contract import TopicKind, TopicScheme
from ingest.kinds import Metric
from ingest.kinds.telemetry import DeviceType, load_file
from simulator.schedule import Agenda, Emission

TYPES_FILE = Path(__file__).with_name("device_types.toml")
VERSION = "0.0.1"
MS_PER_HOUR = 3_600_000
_WALK_TIME_CONSTANT_MS = MS_PER_HOUR  # how long a disturbance takes to fade
_WALK_STD_BANDS = 1.5  # stationary spread of the walk, in dead bands
_DRIFT_BANDS_PER_DAY = 2.0  # largest slow drift, in dead bands per day
_SPIKE_PROBABILITY = 0.01  # of a reading
_SPIKE_BANDS = (4.0, 12.0)
_FLAG_HOLD_MS = (10 * 60_000, 4 * MS_PER_HOUR)


@cache
def shipped_types() -> tuple[DeviceType, ...]:
    """The device types the simulated devices are of (auto-registering)."""
    return tuple(load_file(TYPES_FILE))


def serial_of(device_type: DeviceType, index: int) -> str:
    """``VIB-000001``: the type's first letters and the device's number."""
    return f"{device_type.name[:3].upper()}-{index:06d}"


@dataclass(slots=True)
class _Walk:
    """One number's state: operating point, drift per ms, current excursion."""

    centre: float
    drift_per_ms: float
    excursion: float


class TelemetryDevice:
    """One device of a declared type on the fleet's agenda."""

    def __init__(
        self,
        device_type: DeviceType,
        index: int,
        *,
        seed: int,
        scheme: TopicScheme,
        interval_ms: int,
        agenda: Agenda,
        out: list[Emission],
        start_ms: int,
    ) -> None:
        self.device_type = device_type
        self.serial = serial_of(device_type, index)
        self.topic = scheme.topic(self.serial, TopicKind.TELEMETRY)
        self._rng = random.Random(f"{seed}:{index}:telemetry")  # noqa: S311 - a simulation
        self._agenda = agenda
        self._out = out
        self._interval_ms = interval_ms
        self._last_ms = start_ms
        self._walks = {m.name: self._walk(m) for m in device_type.metrics if m.type == "float"}
        self._counters = {
            m.name: float(self._rng.randint(0, 20_000))
            for m in device_type.metrics
            if m.type == "int"
        }
        self._flags = {
            m.name: self._rng.random() < 0.5 for m in device_type.metrics if m.type == "bool"
        }
        self._flag_until = {name: start_ms + self._hold() for name in self._flags}
        # Devices start spread over one interval, as a real fleet's clocks are.
        agenda.at(start_ms + self._rng.randrange(max(interval_ms, 1)), self._report)

    def _walk(self, metric: Metric) -> _Walk:
        low, high = metric.valid or (0.0, 100.0)
        centre = low + (high - low) * self._rng.uniform(0.05, 0.35)
        drift = self._rng.uniform(-1.0, 1.0) * _DRIFT_BANDS_PER_DAY * metric.threshold / 86_400_000
        return _Walk(centre, drift, self._rng.gauss(0.0, _WALK_STD_BANDS * metric.threshold))

    def _hold(self) -> int:
        low, high = _FLAG_HOLD_MS
        return round(math.exp(self._rng.uniform(math.log(low), math.log(high))))

    def _report(self, now_ms: int) -> None:
        self._out.append(Emission(now_ms, self.topic, self.payload(now_ms)))
        self._agenda.at(now_ms + self._interval_ms, self._report)

    def values(self, now_ms: int) -> dict[str, float | int | bool]:
        """Every metric's value at ``now_ms`` (advancing the device's state to it)."""
        dt = max(now_ms - self._last_ms, 0)
        self._last_ms = now_ms
        decay = math.exp(-dt / _WALK_TIME_CONSTANT_MS)
        values: dict[str, float | int | bool] = {}
        for metric in self.device_type.metrics:
            if metric.type == "float":
                values[metric.name] = self._number(metric, dt, decay)
            elif metric.type == "int":
                running = all(self._flags.values()) if self._flags else True
                self._counters[metric.name] += dt / MS_PER_HOUR if running else 0.0
                values[metric.name] = int(self._counters[metric.name])
            else:
                if now_ms >= self._flag_until[metric.name]:
                    self._flags[metric.name] = not self._flags[metric.name]
                    self._flag_until[metric.name] = now_ms + self._hold()
                values[metric.name] = self._flags[metric.name]
        return values

    def _number(self, metric: Metric, dt: int, decay: float) -> float:
        walk = self._walks[metric.name]
        band = metric.threshold
        walk.centre += walk.drift_per_ms * dt
        noise = math.sqrt(max(1.0 - decay * decay, 0.0))
        walk.excursion = walk.excursion * decay + _WALK_STD_BANDS * band * noise * self._rng.gauss(
            0.0, 1.0
        )
        value = walk.centre + walk.excursion
        if self._rng.random() < _SPIKE_PROBABILITY:
            value += self._rng.uniform(*_SPIKE_BANDS) * band
        low, high = metric.valid or (-math.inf, math.inf)
        return round(min(max(value, low), high), 3)

    def payload(self, now_ms: int) -> bytes:
        """Seed 002's JSON reading at ``now_ms``, naming the device's type."""
        body = {
            "version": VERSION,
            "serial_number": self.serial,
            "device_type": self.device_type.name,
            "timestamp": now_ms,
            "metrics": self.values(now_ms),
        }
        return json.dumps(body, separators=(",", ":")).encode()
