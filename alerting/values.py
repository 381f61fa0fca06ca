"""What a rule can watch: every declared metric of every kind, and the states fleetwatch
keeps besides (a device's liveness, a panel's alarm inputs, its device-id sync).

The catalogue is read from the kinds' declarations (``ingest.kinds``), so a new kind's
metrics can be watched without editing this module; telemetry's metrics come from the device
types stored in PostgreSQL, which the caller passes in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from ingest.kinds import DeviceKind, all_kinds
from ingest.kinds.declare import MetricType
from stores.postgres.schema import AlarmType

__all__ = [
    "ALARM_INPUTS",
    "DEVICE",
    "SYSTEM",
    "Watchable",
    "alarm_metric",
    "catalogue",
]

DEVICE: Final = "device"
"""The pseudo-kind of what every device has: ``online``."""
SYSTEM: Final = "system"
"""The pseudo-kind of fleetwatch's own conditions: ``delivery_failed`` per channel."""

ALARM_INPUTS: Final = tuple(
    t for t in AlarmType if t not in (AlarmType.UNKNOWN, AlarmType.OUTPUT_EVENT)
)
"""The panel's input alarms, each watchable as ``alarm_<type>`` (1 while it is open)."""


def alarm_metric(alarm_type: str) -> str:
    """The watchable name of a panel alarm input: ``alarm_panic1``."""
    return f"alarm_{alarm_type.lower()}"


@dataclass(frozen=True, slots=True)
class Watchable:
    """One value a rule can compare: its kind, name, type and unit."""

    kind: str
    name: str
    type: MetricType
    unit: str = ""
    description: str = ""


def _declared(kind: DeviceKind) -> list[Watchable]:
    return [
        Watchable(kind.name, m.name, m.type, m.unit, m.description or m.title)
        for m in kind.metrics
        if m.type != "str"
    ]


def catalogue(telemetry: Iterable[DeviceKind] = ()) -> dict[tuple[str, str], Watchable]:
    """Every watchable value by (kind, name): the registered kinds' numeric and flag
    metrics, the panel's alarm inputs and sync state, liveness, the channels' failures, and
    the metrics of the ``telemetry`` device types' kinds."""
    values: list[Watchable] = [
        Watchable(DEVICE, "online", "bool", "", "the device is connected and reporting"),
        Watchable(SYSTEM, "delivery_failed", "bool", "", "a channel's last delivery failed"),
    ]
    for kind in all_kinds():
        values.extend(_declared(kind))
    values.extend(
        Watchable("panel", alarm_metric(t), "bool", "", f"the {t} input alarm is open")
        for t in ALARM_INPUTS
    )
    values.append(Watchable("panel", "sync_failed", "bool", "", "the device will not take its id"))
    for kind in telemetry:
        values.extend(_declared(kind))
    return {(value.kind, value.name): value for value in values}
