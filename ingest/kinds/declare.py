"""How a device kind is declared: its metrics, once, for every part that reads them.

A :class:`Metric` says what one value of a device is (unit, type, valid range) and how the
history treats it: a *step* value holds until the next point and is written when it leaves
its dead band (numbers) or changes at all (flags and words); an *event* value is written
whenever it changes and means nothing between points. A :class:`DeviceKind` names a kind and
lists its metrics; decoding validates against the ranges, the CDC reads the dead bands and
categories, and reports read units and names from the same declaration.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from enum import StrEnum
from typing import Final, Literal, TypeAlias

__all__ = [
    "DEFAULT_PERIODIC",
    "ChangeType",
    "DeclarationError",
    "DeviceKind",
    "Metric",
    "MetricType",
    "Scalar",
]

Scalar: TypeAlias = bool | int | float | str | None
MetricType: TypeAlias = Literal["float", "int", "bool", "str"]

DEFAULT_PERIODIC: Final = timedelta(seconds=300)
"""Longest silence of a device's history while its readings keep arriving."""

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class DeclarationError(ValueError):
    """A metric or kind declared with values that cannot work."""


class ChangeType(StrEnum):
    """Why a point was written; stored as the point's ``change_type``."""

    ALARM = "ALARM"
    STATE_CHANGE = "STATE_CHANGE"
    CONNECTION = "CONNECTION"
    SENSOR_DATA = "SENSOR_DATA"
    PERIODIC = "PERIODIC"
    MANUAL = "MANUAL"
    MULTIPLE = "MULTIPLE"


@dataclass(frozen=True, slots=True, kw_only=True)
class Metric:
    """One value a device reports.

    Attributes:
        name: lower-case identifier; the field name in points and payloads.
        unit: unit of measurement as shown to people ("°C", "%", "mm/s"); "" for none.
        type: the value's type on the wire.
        valid: inclusive range a reading must lie in (numbers only), or None.
        dead_band: how far a number may move from the stored value before it is written
            again; None for flags and words, which are written on any change.
        category: the change type a change of this metric counts as.
        event: an event value (True) is meaningful only at its points, a step value (False)
            holds until the next point; trends weight step values by how long they held.
    """

    name: str
    unit: str = ""
    type: MetricType = "float"
    valid: tuple[float, float] | None = None
    dead_band: float | None = None
    category: ChangeType = ChangeType.SENSOR_DATA
    event: bool = False
    description: str = ""
    title: str = ""  # what reports call it ("Fan duty"); the name when empty

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise DeclarationError(f"metric name {self.name!r} must match {_NAME.pattern}")
        numeric = self.type in ("float", "int")
        if self.dead_band is not None:
            if not numeric:
                raise DeclarationError(f"{self.name}: only numbers have a dead band")
            if not (math.isfinite(self.dead_band) and self.dead_band > 0):
                raise DeclarationError(
                    f"{self.name}: dead band must be a positive finite number, got "
                    f"{self.dead_band!r}"
                )
        elif numeric:
            raise DeclarationError(f"{self.name}: a number needs a dead band")
        if self.valid is not None:
            low, high = self.valid
            if not numeric or not (math.isfinite(low) and math.isfinite(high) and low <= high):
                raise DeclarationError(f"{self.name}: valid range {self.valid!r} is not usable")
        if self.category in (ChangeType.PERIODIC, ChangeType.MANUAL, ChangeType.MULTIPLE):
            raise DeclarationError(f"{self.name}: {self.category} is not a category of change")

    @property
    def numeric(self) -> bool:
        """True for float and int metrics (compared against the dead band)."""
        return self.dead_band is not None

    @property
    def label(self) -> str:
        """The metric as reports label it: ``Temperature (°C)``."""
        title = self.title or self.name
        return f"{title} ({self.unit})" if self.unit else title

    @property
    def threshold(self) -> float:
        """The dead band of a number; DeclarationError for a flag or a word."""
        if self.dead_band is None:
            raise DeclarationError(f"{self.name} is not a number: it has no dead band")
        return self.dead_band


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceKind:
    """A kind of device: its name and the metrics its history is made of.

    Attributes:
        name: the kind's identifier ("panel", "telemetry", "robot").
        title: what people call it.
        metrics: every metric, in the order reports list them.
        periodic: longest silence of a device's history while its readings keep arriving.
        measurement: the InfluxDB measurement of a *metric history* (a point per CDC write,
            a field per metric, stores.influx.points.MetricPoint), which the hourly task
            downsamples per metric; None for a history with a format of its own (the
            panel's heartbeat).
    """

    name: str
    title: str
    metrics: tuple[Metric, ...]
    periodic: timedelta = DEFAULT_PERIODIC
    measurement: str | None = None
    _by_name: dict[str, Metric] = field(init=False, repr=False, compare=False)
    # Read for every reading the CDC judges: worked out once.
    _numeric: tuple[Metric, ...] = field(init=False, repr=False, compare=False)
    _discrete: tuple[Metric, ...] = field(init=False, repr=False, compare=False)
    _discrete_names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _numeric_names: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise DeclarationError(f"kind name {self.name!r} must match {_NAME.pattern}")
        names = [metric.name for metric in self.metrics]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise DeclarationError(f"kind {self.name}: metrics declared twice: {duplicates}")
        if "is_online" in names:
            raise DeclarationError(f"kind {self.name}: is_online is every kind's own")
        if self.measurement is not None and not _NAME.match(self.measurement):
            raise DeclarationError(f"kind {self.name}: measurement {self.measurement!r}")
        if self.periodic <= timedelta(0):
            raise DeclarationError(f"kind {self.name}: periodic must be positive")
        object.__setattr__(self, "_by_name", {metric.name: metric for metric in self.metrics})
        object.__setattr__(self, "_numeric", tuple(m for m in self.metrics if m.numeric))
        object.__setattr__(self, "_discrete", tuple(m for m in self.metrics if not m.numeric))
        object.__setattr__(self, "_numeric_names", tuple(m.name for m in self._numeric))
        object.__setattr__(self, "_discrete_names", tuple(m.name for m in self._discrete))

    def metric(self, name: str) -> Metric:
        """The metric called ``name``; KeyError names the kind when there is none."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"kind {self.name} has no metric {name!r}") from None

    @property
    def numeric(self) -> tuple[Metric, ...]:
        """The metrics compared against a dead band."""
        return self._numeric

    @property
    def discrete(self) -> tuple[Metric, ...]:
        """The metrics written on any change."""
        return self._discrete

    @property
    def numeric_names(self) -> tuple[str, ...]:
        """The names of ``numeric``, in order."""
        return self._numeric_names

    @property
    def discrete_names(self) -> tuple[str, ...]:
        """The names of ``discrete``, in order."""
        return self._discrete_names

    def with_dead_bands(
        self, bands: Iterable[tuple[str, float]] = (), periodic: timedelta | None = None
    ) -> DeviceKind:
        """The same kind with some dead bands (and the periodic interval) replaced."""
        changed = dict(bands)
        unknown = sorted(set(changed) - set(self._by_name))
        if unknown:
            raise DeclarationError(f"kind {self.name} has no metrics {unknown}")
        metrics = tuple(
            replace(metric, dead_band=changed[metric.name]) if metric.name in changed else metric
            for metric in self.metrics
        )
        return replace(
            self, metrics=metrics, periodic=self.periodic if periodic is None else periodic
        )
