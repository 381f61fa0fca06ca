"""The ESG alarm panel (seeds 000 and 001) as a declared kind.

Its history is the heartbeat: temperature, humidity and fan duty as step values with dead
bands of 0.5 °C, 2 % RH and 5 % duty (the sensor's and the fan controller's resolution, so a
point means a change a person would notice), the five I/O flags as alarms and the lifecycle
state as a state change.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Self

from ingest.kinds.declare import ChangeType, DeviceKind, Metric, Scalar
from ingest.kinds.registry import register

KIND = "panel"


def _flag(name: str, description: str) -> Metric:
    return Metric(name=name, type="bool", category=ChangeType.ALARM, description=description)


PANEL = register(
    DeviceKind(
        name=KIND,
        title="Alarm panel",
        metrics=(
            Metric(
                name="temperature",
                unit="°C",
                valid=(-40.0, 125.0),  # SHT3x-class sensor
                dead_band=0.5,
                description="enclosure temperature",
                title="Temperature",
            ),
            Metric(
                name="humidity",
                unit="%",
                valid=(0.0, 100.0),
                dead_band=2.0,
                description="relative humidity",
                title="Humidity",
            ),
            Metric(
                name="fan_pwm_duty",
                unit="%",
                type="int",
                valid=(0, 100),
                dead_band=5,
                description="fan PWM duty",
                title="Fan duty",
            ),
            _flag("panic1", "panic input 1"),
            _flag("panic2", "panic input 2"),
            _flag("box_sw", "enclosure tamper switch"),
            _flag("siren", "siren output"),
            _flag("turret", "turret light output"),
            Metric(
                name="device_state",
                type="str",
                category=ChangeType.STATE_CHANGE,
                description="lifecycle state",
            ),
        ),
    )
)


@dataclass(frozen=True, slots=True)
class PanelReading:
    """One heartbeat's values as the CDC engine sees them.

    Attributes:
        received_at: server receive time; the time axis of the history.
        device_ts: the device's own timestamp, used only to drop redeliveries.
    """

    received_at: datetime
    device_ts: datetime | None
    temperature: float
    humidity: float
    fan_pwm_duty: int
    panic1: bool
    panic2: bool
    box_sw: bool
    siren: bool
    turret: bool
    device_state: str | None
    is_online: bool = True

    def __post_init__(self) -> None:
        for name in ("received_at", "device_ts"):
            when = getattr(self, name)
            if when is not None and when.utcoffset() is None:
                raise ValueError(f"{name} must be timezone-aware, got naive {when.isoformat()}")
        # NaN is never "at least a dead band away" from anything, so it would freeze the
        # stored value forever; reject it here rather than lose the guarantee silently.
        for name in ("temperature", "humidity"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite, got {getattr(self, name)!r}")

    @property
    def kind(self) -> str:
        return KIND

    def value(self, name: str) -> Scalar:
        """The value of the declared metric ``name``."""
        value: Scalar = getattr(self, name)
        return value

    def pick(self, names: tuple[str, ...]) -> tuple[Scalar, ...]:
        """The values of the declared metrics ``names``, in order."""
        getter = _GETTERS.get(names)
        if getter is None:
            getter = _GETTERS[names] = _getter(names)
        values: tuple[Scalar, ...] = getter(self)
        return values

    def moved(self, received_at: datetime, device_ts: datetime | None, is_online: bool) -> Self:
        """The same values at another time and connection state."""
        return replace(self, received_at=received_at, device_ts=device_ts, is_online=is_online)


# One C-level getter per tuple of names a kind asks for (a handful per process).
_GETTERS: dict[tuple[str, ...], Callable[[PanelReading], tuple[Scalar, ...]]] = {}


def _getter(names: tuple[str, ...]) -> Callable[[PanelReading], tuple[Scalar, ...]]:
    """A function returning the values of ``names`` as a tuple (even for one or none)."""
    if not names:
        return lambda reading: ()
    if len(names) == 1:
        one = operator.attrgetter(names[0])
        return lambda reading: (one(reading),)
    many: Callable[[PanelReading], tuple[Scalar, ...]] = operator.attrgetter(*names)
    return many
