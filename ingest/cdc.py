"""Change data capture: which readings become points in the stored history.

The InfluxDB history holds a point only for a *significant* reading, and every point carries
the device's whole state. :func:`decide` is that rule as a pure function of the device's
:class:`CdcState` (the reference: the last written point), a new reading and the device's
:class:`~ingest.kinds.DeviceKind`, whose declared metrics say what counts; :class:`CdcTracker`
keeps the states of a fleet of any kinds. Neither does I/O nor reads a clock: time is the
reading's ``received_at``, the server's receive time.

A reading is written when, compared with the last *written* point:

* a metric without a dead band (a flag or a word: its category, e.g. ALARM or STATE_CHANGE)
  or ``is_online`` (CONNECTION) differs;
* a number is at least its dead band away (its category, SENSOR_DATA for measurements);
* the kind's ``periodic`` or more has passed since that point was written (PERIODIC); or
* the device has no state yet: its first point is PERIODIC with ``changes == {"first": True}``.

``change_type`` names the one category that changed, MULTIPLE when several did, PERIODIC
when only the clock fired. ``Decision.categories`` lists the changed categories in priority
order ALARM > STATE_CHANGE > CONNECTION > SENSOR_DATA, so a MULTIPLE point still says it
carried an alarm. MANUAL is never chosen here; it is for points a command writes.
``changes`` maps each metric that triggered the write to ``{"old", "new", "diff"}`` (``diff``
for numbers only), or is ``{"first": True}`` / ``{"periodic": True}``.

Guarantee, for every kind: read the points as a step function (each holds until the next).
At every processed reading every stored number is strictly less than its dead band from the
reading's value, every other metric equals the reading's, and the latest point is less than
``periodic`` old unless the reading itself was written.

Redelivery guard: a reading whose ``device_ts`` is not newer than the newest one already
seen for the device is a duplicate (MQTT redelivers at least once, and a reconnecting device
may resend): no point, state unchanged. Readings without ``device_ts`` are not guarded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Final, Protocol, Self, TypeAlias

from ingest.kinds import ChangeType, DeviceKind, Scalar, registered

__all__ = [
    "CdcError",
    "CdcState",
    "CdcTracker",
    "ChangeType",
    "Changes",
    "Decision",
    "MetricReading",
    "Observation",
    "decide",
    "require_finite",
]

Changes: TypeAlias = dict[str, dict[str, Scalar] | bool]
"""JSON-serialisable record of what triggered a point (see the module docstring)."""

# Devices send float32: 15.8 and 16.3 arrive as values 0.4999990 apart in float64. Letting a
# move fall short of its dead band by this fraction of it, far below any sensor's resolution,
# makes "at the dead band" mean what the displayed values say. It can only make a write come
# sooner, so the guarantee in the module docstring still holds.
_THRESHOLD_SLACK: Final = 1e-4
# Differences of float32 values carry noise like 0.5000003815; six decimals keep `diff` legible.
_DIFF_DECIMALS: Final = 6

# Highest priority first.
_PRIORITY: Final = (
    ChangeType.ALARM,
    ChangeType.STATE_CHANGE,
    ChangeType.CONNECTION,
    ChangeType.SENSOR_DATA,
)


class CdcError(ValueError):
    """A reading, state or kind the CDC engine cannot work with."""


def _require_aware(name: str, value: datetime | None) -> None:
    if value is not None and value.utcoffset() is None:
        raise CdcError(f"{name} must be timezone-aware, got naive {value.isoformat()}")


def require_finite(kind: DeviceKind, reading: Observation) -> None:
    """CdcError unless every number of ``reading`` is finite (and present).

    NaN is never "at least a dead band away" from anything, so it would freeze the stored
    value forever; it is refused rather than the guarantee lost silently.
    """
    for metric in kind.numeric:
        value = reading.value(metric.name)
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise CdcError(f"{metric.name} must be a finite number, got {value!r}")


class Observation(Protocol):
    """One reading of one device as the CDC engine sees it; each kind has its own class.

    Attributes:
        kind: the name of the device's kind (a key of the registry).
        received_at: server receive time; the time axis of the history.
        device_ts: the device's own timestamp, used only to drop redeliveries.
        is_online: whether the device is connected (every kind's own discrete value).
    """

    @property
    def kind(self) -> str: ...
    @property
    def received_at(self) -> datetime: ...
    @property
    def device_ts(self) -> datetime | None: ...
    @property
    def is_online(self) -> bool: ...

    def value(self, name: str) -> Scalar:
        """The value of the declared metric ``name``."""
        ...

    def pick(self, names: tuple[str, ...]) -> tuple[Scalar, ...]:
        """The values of the declared metrics ``names``, in order (one call for many)."""
        ...

    def moved(self, received_at: datetime, device_ts: datetime | None, is_online: bool) -> Self:
        """The same values at another time and connection state (a connection point)."""
        ...


@dataclass(frozen=True, slots=True)
class MetricReading:
    """A reading of a kind whose metrics are only known at run time (declared device types).

    ``values`` holds every metric of the kind: a handler carries the last stored value of a
    metric that a message left out, so the reading always describes the whole state.
    """

    kind: str
    received_at: datetime
    device_ts: datetime | None
    values: Mapping[str, Scalar]
    is_online: bool = True

    def __post_init__(self) -> None:
        _require_aware("received_at", self.received_at)
        _require_aware("device_ts", self.device_ts)

    def value(self, name: str) -> Scalar:
        """The value of metric ``name`` (None when the kind's device never sent it)."""
        return self.values.get(name)

    def pick(self, names: tuple[str, ...]) -> tuple[Scalar, ...]:
        """The values of metrics ``names``, in order."""
        return tuple(map(self.values.get, names))

    def moved(self, received_at: datetime, device_ts: datetime | None, is_online: bool) -> Self:
        """The same values at another time and connection state."""
        return replace(self, received_at=received_at, device_ts=device_ts, is_online=is_online)


@dataclass(frozen=True, slots=True)
class CdcState:
    """What one device is compared against.

    Attributes:
        reference: the reading last written as a point; its values are the stored state.
        last_device_ts: newest device timestamp processed, written or not.
    """

    reference: Observation
    last_device_ts: datetime | None

    def __post_init__(self) -> None:
        _require_aware("last_device_ts", self.last_device_ts)

    @classmethod
    def from_reading(cls, reading: Observation) -> CdcState:
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
    categories: tuple[ChangeType, ...] = field(default=())


def _is_stale(state: CdcState, reading: Observation) -> bool:
    return (
        reading.device_ts is not None
        and state.last_device_ts is not None
        and reading.device_ts <= state.last_device_ts
    )


def _field_changes(
    kind: DeviceKind, reference: Observation, reading: Observation
) -> tuple[Changes, set[ChangeType]]:
    """What moved far enough to be written, and the categories it belongs to."""
    changes: Changes = {}
    categories: set[ChangeType] = set()
    names = kind.discrete_names
    olds, news = reference.pick(names), reading.pick(names)
    if olds != news:  # most readings change no flag: one comparison of two tuples
        for metric, old, new in zip(kind.discrete, olds, news, strict=True):
            if old != new:
                changes[metric.name] = {"old": old, "new": new}
                categories.add(metric.category)
    if reference.is_online != reading.is_online:
        changes["is_online"] = {"old": reference.is_online, "new": reading.is_online}
        categories.add(ChangeType.CONNECTION)
    # Compared with the *written* value, not the previous message: a slow drift of 0.1 per
    # reading never moves 0.5 between two messages but must still reach the history.
    names = kind.numeric_names
    olds, news = reference.pick(names), reading.pick(names)
    for metric, old, new in zip(kind.numeric, olds, news, strict=True):
        if not isinstance(new, int | float) or not isinstance(old, int | float):
            if old != new:  # a value appearing or disappearing is a change of its own
                changes[metric.name] = {"old": old, "new": new}
                categories.add(metric.category)
            continue
        band = metric.threshold
        if abs(new - old) >= band * (1 - _THRESHOLD_SLACK):
            changes[metric.name] = {
                "old": old,
                "new": new,
                "diff": round(new - old, _DIFF_DECIMALS),
            }
            categories.add(metric.category)
    return changes, categories


def decide(
    state: CdcState | None, reading: Observation, kind: DeviceKind | None = None
) -> Decision:
    """Decide whether ``reading`` becomes a point, and the device's next state.

    ``kind`` is the declaration the reading is judged by: the registered kind named by
    ``reading.kind`` unless given (other dead bands, tests).
    """
    kind = kind or registered(reading.kind)
    if state is None:
        return _write(reading, reading.device_ts, ChangeType.PERIODIC, {"first": True})
    if _is_stale(state, reading):
        return Decision(write=False, change_type=None, changes={}, state=state, duplicate=True)
    # Unstamped readings are processed but must not erase the guard's memory.
    last_device_ts = state.last_device_ts if reading.device_ts is None else reading.device_ts
    changes, changed = _field_changes(kind, state.reference, reading)
    categories = tuple(category for category in _PRIORITY if category in changed)
    if categories:
        change_type = categories[0] if len(categories) == 1 else ChangeType.MULTIPLE
        return _write(reading, last_device_ts, change_type, changes, categories)
    if reading.received_at - state.written_at >= kind.periodic:
        return _write(reading, last_device_ts, ChangeType.PERIODIC, {"periodic": True})
    # The reference stays, but the guard remembers this reading so its redelivery is caught.
    state = CdcState(reference=state.reference, last_device_ts=last_device_ts)
    return Decision(write=False, change_type=None, changes={}, state=state)


def _write(
    reading: Observation,
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


StateKey: TypeAlias = int | tuple[int, str]
"""A device id, or (device id, stream) for a device with several histories (a robot's
battery, each of its servos)."""

_ABSENT: Final = object()


class CdcTracker:
    """The CDC states of a fleet of any kinds, keyed by device (and stream); no I/O.

    Each reading is judged by its kind's declaration: the registered one, or the one given in
    ``kinds`` (a deployment's own dead bands). Seed it at start-up with the persisted states
    so that a restart neither floods the history with "first" points nor forgets what was
    written.
    """

    def __init__(self, kinds: Mapping[str, DeviceKind] | None = None) -> None:
        self._kinds = dict(kinds or {})
        self._states: dict[StateKey, CdcState] = {}
        # While a batch is open: each key's state before the batch first touched it.
        self._undo: dict[StateKey, object] | None = None

    def begin(self) -> None:
        """Start remembering changes, so that ``rollback`` can undo a failed batch."""
        self._undo = {}

    def commit(self) -> None:
        """Keep the batch's changes."""
        self._undo = None

    def rollback(self) -> None:
        """Undo every observation since ``begin``: the batch will be judged afresh."""
        for key, before in (self._undo or {}).items():
            if before is _ABSENT:
                self._states.pop(key, None)
            else:
                self._states[key] = before  # type: ignore[assignment]
        self._undo = None

    def rewritten(self) -> set[StateKey]:
        """The keys whose reference (the last written point) changed since ``begin``: the
        states worth persisting whole; the others only moved their redelivery guard."""
        changed: set[StateKey] = set()
        for key, before in (self._undo or {}).items():
            now = self._states.get(key)
            if now is None:
                continue
            if not isinstance(before, CdcState) or before.reference is not now.reference:
                changed.add(key)
        return changed

    def kind(self, name: str) -> DeviceKind:
        """The declaration readings of kind ``name`` are judged by."""
        return self._kinds.get(name) or registered(name)

    def clear(self) -> None:
        """Forget every state (a worker whose devices were handed to another)."""
        self._states.clear()

    def seed(self, states: Mapping[StateKey, CdcState]) -> None:
        """Adopt known states, replacing any held for the same devices."""
        self._states.update(states)

    def observe(
        self, key: StateKey, reading: Observation, kind: DeviceKind | None = None
    ) -> Decision:
        """Decide on one reading of one device (or stream) and keep the resulting state;
        ``kind`` is the declaration to judge by when it is not the registered one."""
        decision = decide(self._states.get(key), reading, kind or self.kind(reading.kind))
        if self._undo is not None and key not in self._undo:
            self._undo[key] = self._states.get(key, _ABSENT)
        self._states[key] = decision.state
        return decision

    def state(self, key: StateKey) -> CdcState | None:
        """The current state of one device or stream."""
        return self._states.get(key)

    def restore(self, saved: Mapping[StateKey, CdcState], device_ids: Iterable[StateKey]) -> None:
        """Undo the observations of a batch that was not committed.

        ``saved`` is the ``snapshot`` taken before the batch; devices of ``device_ids`` that had
        no state then lose the one the batch gave them.
        """
        for device_id in device_ids:
            if device_id in saved:
                self._states[device_id] = saved[device_id]
            else:
                self._states.pop(device_id, None)

    def snapshot(self, device_ids: Iterable[StateKey]) -> dict[StateKey, CdcState]:
        """The current states of those of ``device_ids`` that have one, for persisting."""
        return {
            device_id: self._states[device_id]
            for device_id in device_ids
            if device_id in self._states
        }
