"""Telemetry devices (seed 002): device types declared at run time, JSON readings checked
against them.

A :class:`DeviceType` is a kind whose metrics an operator declares (``fleetwatch
device-types``, a TOML or YAML file): several metrics per type, each with its unit, valid
range and dead band. Its devices publish ``{prefix}/{serial}/telemetry`` with a JSON body
``{"version": "0.0.1", "serial_number": "VIB-SN-001", "metrics": {"vibration": 5.2}}``;
:func:`checked_values` validates a reading against the type, and the CDC judges it by
:attr:`DeviceType.kind`.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import yaml

from ingest.kinds import validate
from ingest.kinds.declare import ChangeType, DeclarationError, DeviceKind, Metric, Scalar
from stores.influx.points import TELEMETRY
from stores.postgres.device_types import DeviceTypeRow, MetricRow

KIND: Final = "telemetry"
MEASUREMENT: Final = TELEMETRY  # the readings' metric history
# Letters, digits, '_' and '-': seed 003's boards are called ESP32, ESP32-S3 and ESP32-CAM.
TYPE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,99}$")
MAX_METRICS: Final = 32


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceType:
    """A type of telemetry device and the metrics its devices report.

    Attributes:
        name: identifier, e.g. ``vibration_sensor`` or ``ESP32-CAM``.
        metrics: what a reading may carry, in display order.
        auto_register: an unknown serial whose payload names this type becomes a device of
            it; off by default, so a stray or mistyped serial is a dead letter.
        id: the database id, once stored.
    """

    name: str
    metrics: tuple[Metric, ...]
    description: str = ""
    auto_register: bool = False
    id: UUID | None = None
    kind: DeviceKind = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not TYPE_NAME.match(self.name):
            raise DeclarationError(f"device type name {self.name!r} must match {TYPE_NAME.pattern}")
        if not 1 <= len(self.metrics) <= MAX_METRICS:
            raise DeclarationError(f"{self.name}: declare 1 to {MAX_METRICS} metrics")
        for metric in self.metrics:
            if metric.type == "str":
                raise DeclarationError(
                    f"{self.name}.{metric.name}: telemetry metrics are numbers or flags"
                )
        kind = DeviceKind(name=KIND, title=self.name, metrics=self.metrics, measurement=MEASUREMENT)
        object.__setattr__(self, "kind", kind)


def metric(
    name: str,
    *,
    unit: str = "",
    type: str = "float",
    minimum: float | None = None,
    maximum: float | None = None,
    dead_band: float | None = None,
    event: bool = False,
    description: str = "",
) -> Metric:
    """A telemetry metric from its declared parts; numbers need a dead band, flags none."""
    if type not in ("float", "int", "bool"):
        raise DeclarationError(f"{name}: type must be float, int or bool, not {type!r}")
    if type == "bool" and (minimum is not None or maximum is not None):
        raise DeclarationError(f"{name}: a flag has no range")
    valid = None
    if minimum is not None or maximum is not None:
        valid = (
            -math.inf if minimum is None else minimum,
            math.inf if maximum is None else maximum,
        )
        if math.isinf(valid[0]) or math.isinf(valid[1]):
            raise DeclarationError(f"{name}: give both minimum and maximum, or neither")
    return Metric(
        name=name,
        unit=unit,
        type=type,  # type: ignore[arg-type]
        valid=valid,
        dead_band=dead_band,
        category=ChangeType.STATE_CHANGE if type == "bool" else ChangeType.SENSOR_DATA,
        event=event,
        description=description,
    )


def from_mapping(data: Mapping[str, Any]) -> DeviceType:
    """A device type from its file form (see ``load_file``); DeclarationError says what is off."""
    known = {"name", "description", "auto_register", "metrics"}
    extra = sorted(set(data) - known)
    if extra:
        raise DeclarationError(f"unknown keys {extra}; a device type has {sorted(known)}")
    metrics = data.get("metrics")
    if not isinstance(metrics, list) or not metrics:
        raise DeclarationError(f"{data.get('name')!r}: metrics must be a non-empty list")
    parts = {"name", "unit", "type", "min", "max", "dead_band", "event", "description"}
    declared = []
    for entry in metrics:
        if not isinstance(entry, Mapping) or "name" not in entry:
            raise DeclarationError(f"each metric needs at least a name, got {entry!r}")
        extra = sorted(set(entry) - parts)
        if extra:
            raise DeclarationError(f"metric {entry['name']}: unknown keys {extra}")
        declared.append(
            metric(
                str(entry["name"]),
                unit=str(entry.get("unit", "")),
                type=str(entry.get("type", "float")),
                minimum=_number(entry.get("min")),
                maximum=_number(entry.get("max")),
                dead_band=_number(entry.get("dead_band")),
                event=bool(entry.get("event", False)),
                description=str(entry.get("description", "")),
            )
        )
    return DeviceType(
        name=str(data.get("name", "")),
        description=str(data.get("description", "")),
        auto_register=bool(data.get("auto_register", False)),
        metrics=tuple(declared),
    )


def to_mapping(device_type: DeviceType) -> dict[str, Any]:
    """The file form of a device type (inverse of ``from_mapping``)."""
    metrics: list[dict[str, Any]] = []
    for m in device_type.metrics:
        entry: dict[str, Any] = {"name": m.name, "unit": m.unit, "type": m.type}
        if m.valid is not None:
            entry["min"], entry["max"] = m.valid
        if m.dead_band is not None:
            entry["dead_band"] = m.dead_band
        if m.event:
            entry["event"] = True
        if m.description:
            entry["description"] = m.description
        metrics.append(entry)
    return {
        "name": device_type.name,
        "description": device_type.description,
        "auto_register": device_type.auto_register,
        "metrics": metrics,
    }


def from_row(row: DeviceTypeRow) -> DeviceType:
    """A device type as stored (``stores.postgres.device_types``)."""
    return DeviceType(
        id=row.id,
        name=row.name,
        description=row.description or "",
        auto_register=row.auto_register,
        metrics=tuple(
            metric(
                m.name,
                unit=m.unit,
                type=m.value_type,
                minimum=m.metric_min,
                maximum=m.metric_max,
                dead_band=m.dead_band,
                event=m.is_event,
                description=m.description or "",
            )
            for m in row.metrics
        ),
    )


def to_row(device_type: DeviceType) -> DeviceTypeRow:
    """The stored form of a device type."""
    return DeviceTypeRow(
        id=device_type.id,
        name=device_type.name,
        description=device_type.description or None,
        auto_register=device_type.auto_register,
        metrics=tuple(
            MetricRow(
                name=m.name,
                unit=m.unit,
                value_type=m.type,
                metric_min=None if m.valid is None else m.valid[0],
                metric_max=None if m.valid is None else m.valid[1],
                dead_band=m.dead_band,
                is_event=m.event,
                description=m.description or None,
            )
            for m in device_type.metrics
        ),
    )


def load_file(path: Path) -> list[DeviceType]:
    """The device types of a TOML (``[[device_types]]``) or YAML (``device_types:``) file."""
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            raise DeclarationError(f"{path.name}: use a .toml, .yaml or .yml file")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise DeclarationError(f"{path.name} does not parse: {exc}") from exc
    types = data.get("device_types") if isinstance(data, Mapping) else None
    if not isinstance(types, list) or not types:
        raise DeclarationError(f"{path.name}: expected a non-empty list 'device_types'")
    return [from_mapping(entry) for entry in types]


def _number(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DeclarationError(f"expected a number, got {value!r}")
    return float(value)


def checked_values(device_type: DeviceType, metrics: Mapping[str, object]) -> dict[str, Scalar]:
    """The reading's values, each checked against the type's declaration (see
    ``ingest.kinds.validate.checked_values`` for the reasons)."""
    return validate.checked_values(device_type.kind, metrics, owner=device_type.name)
