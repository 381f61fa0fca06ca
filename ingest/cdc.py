"""Change data capture: which heartbeats become points in the stored history.

The InfluxDB history holds a point only for a *significant* heartbeat, and every point
carries the device's whole state. :func:`decide` is that rule as a pure function of the
device's :class:`CdcState` (the reference: the last written point) and a new
:class:`Reading`; :class:`CdcTracker` keeps the states of a fleet. Neither does I/O nor reads
a clock: time is ``Reading.received_at``, the server's receive time.

A reading is written when, compared with the last *written* point:

* an ALARM field (panic1, panic2, box_sw, siren, turret), ``device_state`` (STATE_CHANGE)
  or ``is_online`` (CONNECTION) differs;
* temperature, humidity or fan duty (SENSOR_DATA) is at least its threshold away;
* ``Thresholds.periodic`` or more has passed since that point was written (PERIODIC); or
* the device has no state yet: its first point is PERIODIC with ``changes == {"first": True}``.

``change_type`` names the one category that changed, MULTIPLE when several did, PERIODIC
when only the clock fired. ``Decision.categories`` lists the changed categories in priority
order ALARM > STATE_CHANGE > CONNECTION > SENSOR_DATA, so a MULTIPLE point still says it
carried an alarm. MANUAL is never chosen here; it is for points a command writes.
``changes`` maps each field that triggered the write to ``{"old", "new", "diff"}`` (``diff``
for numbers only), or is ``{"first": True}`` / ``{"periodic": True}``.

Guarantee: read the points as a step function (each holds until the next). At every
processed reading the stored temperature, humidity and fan duty are strictly less than
their thresholds from the reading's values, every discrete value equals the reading's, and
the latest point is less than ``periodic`` old unless the reading itself was written.

Redelivery guard: a reading whose ``device_ts`` is not newer than the newest one already
seen for the device is a duplicate (MQTT redelivers at least once, and a reconnecting device
may resend): no point, state unchanged. Readings without ``device_ts`` are not guarded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, TypeAlias

__all__ = [
    "DEFAULT_THRESHOLDS",
    "CdcError",
    "CdcState",
    "CdcTracker",
    "ChangeType",
    "Changes",
    "Decision",
    "Reading",
    "Thresholds",
    "decide",
]

Scalar: TypeAlias = bool | int | float | str | None
Changes: TypeAlias = dict[str, dict[str, Scalar] | bool]
"""JSON-serialisable record of what triggered a point (see the module docstring)."""

# Devices send float32: 15.8 and 16.3 arrive as values 0.4999990 apart in float64. Letting a
# move fall short of its threshold by this fraction of it, far below any sensor's resolution,
# makes "at the threshold" mean what the displayed values say. It can only make a write come
# sooner, so the guarantee in the module docstring still holds.
_THRESHOLD_SLACK: Final = 1e-4
# Differences of float32 values carry noise like 0.5000003815; six decimals keep `diff` legible.
_DIFF_DECIMALS: Final = 6


class CdcError(ValueError):
    """A reading, state or threshold the CDC engine cannot work with."""


class ChangeType(StrEnum):
    """Why a point was written; stored as the point's ``change_type``."""

    ALARM = "ALARM"
    STATE_CHANGE = "STATE_CHANGE"
    CONNECTION = "CONNECTION"
    SENSOR_DATA = "SENSOR_DATA"
    PERIODIC = "PERIODIC"
    MANUAL = "MANUAL"
    MULTIPLE = "MULTIPLE"


# Highest priority first.
_PRIORITY: Final = (
    ChangeType.ALARM,
    ChangeType.STATE_CHANGE,
    ChangeType.CONNECTION,
    ChangeType.SENSOR_DATA,
)
_DISCRETE_FIELDS: Final[Mapping[str, ChangeType]] = {
    "panic1": ChangeType.ALARM,
    "panic2": ChangeType.ALARM,
    "box_sw": ChangeType.ALARM,
    "siren": ChangeType.ALARM,
    "turret": ChangeType.ALARM,
    "device_state": ChangeType.STATE_CHANGE,
    "is_online": ChangeType.CONNECTION,
}
_NUMERIC_FIELDS: Final = ("temperature", "humidity", "fan_pwm_duty")


def _require_aware(name: str, value: datetime | None) -> None:
    if value is not None and value.utcoffset() is None:
        raise CdcError(f"{name} must be timezone-aware, got naive {value.isoformat()}")


def _require_positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise CdcError(f"threshold {name} must be a positive finite number, got {value!r}")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """How far a value may move, and how long the history may stay silent, before a write.

    Attributes:
        temperature: °C away from the written value.
        humidity: percentage points away from the written value.
        fan_pwm_duty: percentage points away from the written value.
        periodic: longest time without a point while readings keep arriving.
    """

    temperature: float = 0.5
    humidity: float = 2.0
    fan_pwm_duty: int = 5
    periodic: timedelta = timedelta(seconds=300)

    def __post_init__(self) -> None:
        for name in _NUMERIC_FIELDS:
            _require_positive(name, getattr(self, name))
        if self.periodic <= timedelta(0):
            raise CdcError(f"threshold periodic must be positive, got {self.periodic}")


DEFAULT_THRESHOLDS: Final = Thresholds()


@dataclass(frozen=True, slots=True)
class Reading:
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
        _require_aware("received_at", self.received_at)
        _require_aware("device_ts", self.device_ts)
        # NaN is never "at least a threshold away" from anything, so it would freeze the
        # stored value forever; reject it here rather than lose the guarantee silently.
        for name in ("temperature", "humidity"):
            if not math.isfinite(getattr(self, name)):
                raise CdcError(f"{name} must be finite, got {getattr(self, name)!r}")


@dataclass(frozen=True, slots=True)
class CdcState:
    """What one device is compared against.

    Attributes:
        reference: the reading last written as a point; its values are the stored state.
        last_device_ts: newest device timestamp processed, written or not.
    """

    reference: Reading
    last_device_ts: datetime | None

    def __post_init__(self) -> None:
        _require_aware("last_device_ts", self.last_device_ts)

    @classmethod
    def from_reading(cls, reading: Reading) -> CdcState:
        """The state right after ``reading`` was written as a point."""
        return cls(reference=reading, last_device_ts=reading.device_ts)

    @property
    def written_at(self) -> datetime:
        """Server time of the last written point; the periodic clock runs from here."""
        return self.reference.received_at


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one reading.

    Attributes:
        write: whether the reading becomes a point.
        change_type: why, when written; None otherwise.
        changes: what triggered the write (empty when not written).
        state: the device's state after this reading.
        duplicate: the reading was a redelivery or out of order and was ignored.
        categories: the changed categories, highest priority first.
    """

    write: bool
    change_type: ChangeType | None
    changes: Changes
    state: CdcState
    duplicate: bool = False
    categories: tuple[ChangeType, ...] = ()


def _is_stale(state: CdcState, reading: Reading) -> bool:
    return (
        reading.device_ts is not None
        and state.last_device_ts is not None
        and reading.device_ts <= state.last_device_ts
    )


def _field_changes(reference: Reading, reading: Reading, thresholds: Thresholds) -> Changes:
    changes: Changes = {}
    for name in _DISCRETE_FIELDS:
        old, new = getattr(reference, name), getattr(reading, name)
        if old != new:
            changes[name] = {"old": old, "new": new}
    # Compared with the *written* value, not the previous message: a slow drift of 0.1 per
    # reading never moves 0.5 between two messages but must still reach the history.
    for name in _NUMERIC_FIELDS:
        old, new = getattr(reference, name), getattr(reading, name)
        threshold: float = getattr(thresholds, name)
        if abs(new - old) >= threshold * (1 - _THRESHOLD_SLACK):
            changes[name] = {"old": old, "new": new, "diff": round(new - old, _DIFF_DECIMALS)}
    return changes


def _categories(changes: Changes) -> tuple[ChangeType, ...]:
    changed = {_DISCRETE_FIELDS.get(name, ChangeType.SENSOR_DATA) for name in changes}
    return tuple(category for category in _PRIORITY if category in changed)


def decide(
    state: CdcState | None, reading: Reading, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> Decision:
    """Decide whether ``reading`` becomes a point, and the device's next state."""
    if state is None:
        return _write(reading, reading.device_ts, ChangeType.PERIODIC, {"first": True})
    if _is_stale(state, reading):
        return Decision(write=False, change_type=None, changes={}, state=state, duplicate=True)
    # Unstamped readings are processed but must not erase the guard's memory.
    last_device_ts = state.last_device_ts if reading.device_ts is None else reading.device_ts
    changes = _field_changes(state.reference, reading, thresholds)
    categories = _categories(changes)
    if categories:
        change_type = categories[0] if len(categories) == 1 else ChangeType.MULTIPLE
        return _write(reading, last_device_ts, change_type, changes, categories)
    if reading.received_at - state.written_at >= thresholds.periodic:
        return _write(reading, last_device_ts, ChangeType.PERIODIC, {"periodic": True})
    # The reference stays, but the guard remembers this reading so its redelivery is caught.
    state = replace(state, last_device_ts=last_device_ts)
    return Decision(write=False, change_type=None, changes={}, state=state)


def _write(
    reading: Reading,
    last_device_ts: datetime | None,
    change_type: ChangeType,
    changes: Changes,
    categories: tuple[ChangeType, ...] = (),
) -> Decision:
    """A decision to write ``reading``, which becomes the whole new reference."""
    state = CdcState(reference=reading, last_device_ts=last_device_ts)
    return Decision(
        write=True, change_type=change_type, changes=changes, state=state, categories=categories
    )


class CdcTracker:
    """The CDC states of a fleet, keyed by device id; no I/O.

    Seed it at start-up with the persisted states (or the last points) so that a restart
    neither floods the history with "first" points nor forgets what was written.
    """

    def __init__(self, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> None:
        self._thresholds = thresholds
        self._states: dict[int, CdcState] = {}

    @property
    def thresholds(self) -> Thresholds:
        """The thresholds every decision uses."""
        return self._thresholds

    def seed(self, states: Mapping[int, CdcState]) -> None:
        """Adopt known states, replacing any held for the same devices."""
        self._states.update(states)

    def observe(self, device_id: int, reading: Reading) -> Decision:
        """Decide on one reading of one device and keep the resulting state."""
        decision = decide(self._states.get(device_id), reading, self._thresholds)
        self._states[device_id] = decision.state
        return decision

    def restore(self, saved: Mapping[int, CdcState], device_ids: Iterable[int]) -> None:
        """Undo the observations of a batch that was not committed.

        ``saved`` is the ``snapshot`` taken before the batch; devices of ``device_ids`` that had
        no state then lose the one the batch gave them.
        """
        for device_id in device_ids:
            if device_id in saved:
                self._states[device_id] = saved[device_id]
            else:
                self._states.pop(device_id, None)

    def snapshot(self, device_ids: Iterable[int]) -> dict[int, CdcState]:
        """The current states of those of ``device_ids`` that have one, for persisting."""
        return {
            device_id: self._states[device_id]
            for device_id in device_ids
            if device_id in self._states
        }
