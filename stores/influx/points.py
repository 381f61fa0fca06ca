"""The InfluxDB schema of fleetwatch, as line protocol.

Measurement ``heartbeat`` (bucket FLEETWATCH_INFLUX_BUCKET): one point per CDC write.
  tags:   device_id, hostname, zone, country - all fixed per device, so the series count is
          the device count (100,000 devices -> 100,000 series), whatever else is stored.
  fields: temperature, humidity (float), fan_pwm_duty, uptime (int), panic1, panic2, box_sw,
          siren, turret, is_online (bool), device_state, change_type, changes (JSON) (string),
          device_time_ms (int, the device clock when plausible).
  change_type is a field, not a tag: as a tag it would split each device's history into one
  series per change type, multiply the series count, and make every step-function read
  (carry the last value forward) merge those series first.

Measurement ``alarm``: one point per accepted alarm state change.
  tags:   device_id, hostname, zone, country, alarm_type (bounded enum)
  fields: event_state, priority (string), sequence, output_type, pattern_type,
          duration_seconds, elapsed_seconds (int), physical_state (bool).

Times are the server's receive time in milliseconds: the server clock is the time axis.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from influxdb_client.client.write.point import Point
from influxdb_client.domain.write_precision import WritePrecision

HEARTBEAT = "heartbeat"
ALARM = "alarm"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def _epoch_ms(when: datetime) -> int:
    """``when`` as whole Unix milliseconds, exactly (``when`` must be timezone-aware).

    influxdb-client converts a datetime through float nanoseconds and truncates, which writes
    about one millisecond time in eight 1 ms early: a point then lands on its predecessor's
    time and overwrites it. An integer is written as given.
    """
    return (when - _EPOCH) // _ONE_MS


@dataclass(frozen=True, slots=True)
class DeviceTags:
    """Tag values that identify a device's series."""

    device_id: int
    hostname: str
    zone: int | None
    country: str | None

    def apply(self, point: Point) -> Point:
        """Add the tags to ``point`` (missing zone/country are left out, not "None")."""
        point.tag("device_id", str(self.device_id)).tag("hostname", self.hostname)
        if self.zone is not None:
            point.tag("zone", str(self.zone))
        if self.country:
            point.tag("country", self.country)
        return point


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatPoint:
    """One CDC-written heartbeat."""

    tags: DeviceTags
    time: datetime
    temperature: float
    humidity: float
    fan_pwm_duty: int
    panic1: bool
    panic2: bool
    box_sw: bool
    siren: bool
    turret: bool
    is_online: bool
    device_state: str | None
    uptime: int | None
    change_type: str
    changes: Mapping[str, object]
    device_time: datetime | None


def heartbeat_line(p: HeartbeatPoint) -> str:
    """Line protocol of one heartbeat point."""
    point = p.tags.apply(Point(HEARTBEAT))
    point.field("temperature", round(float(p.temperature), 3))
    point.field("humidity", round(float(p.humidity), 3))
    point.field("fan_pwm_duty", int(p.fan_pwm_duty))
    for name in ("panic1", "panic2", "box_sw", "siren", "turret", "is_online"):
        point.field(name, bool(getattr(p, name)))
    if p.device_state:
        point.field("device_state", p.device_state)
    if p.uptime is not None:
        point.field("uptime", int(p.uptime))
    return _cdc_line(point, p.time, p.change_type, p.changes, p.device_time)


def _cdc_line(
    point: Point,
    time: datetime,
    change_type: str,
    changes: Mapping[str, object],
    device_time: datetime | None,
) -> str:
    """``point`` with the fields every CDC point carries (why it was written), as a line."""
    point.field("change_type", change_type)
    point.field("changes", json.dumps(changes, separators=(",", ":"), default=str))
    if device_time is not None:
        point.field("device_time_ms", _epoch_ms(device_time))
    return str(point.time(_epoch_ms(time), WritePrecision.MS).to_line_protocol())


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmPoint:
    """One accepted alarm state change."""

    tags: DeviceTags
    time: datetime
    alarm_type: str
    event_state: str
    priority: str
    sequence: int
    physical_state: bool
    output_type: int | None
    pattern_type: int | None
    duration_seconds: int
    elapsed_seconds: int


def alarm_line(p: AlarmPoint) -> str:
    """Line protocol of one alarm point."""
    point = p.tags.apply(Point(ALARM)).tag("alarm_type", p.alarm_type)
    point.field("event_state", p.event_state).field("priority", p.priority)
    point.field("sequence", int(p.sequence)).field("physical_state", bool(p.physical_state))
    for name in ("output_type", "pattern_type"):
        value = getattr(p, name)
        if value is not None:
            point.field(name, int(value))
    point.field("duration_seconds", int(p.duration_seconds))
    point.field("elapsed_seconds", int(p.elapsed_seconds))
    return str(point.time(_epoch_ms(p.time), WritePrecision.MS).to_line_protocol())


TELEMETRY = "telemetry"


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricPoint:
    """One CDC-written reading of a kind whose metrics are declared at run time.

    Tags are few and bounded by the fleet (device id, hostname, device type): every metric is
    a field, so a device is one series key per field, never one per value.
    """

    measurement: str
    tags: Mapping[str, str]
    time: datetime
    values: Mapping[str, bool | int | float | str | None]
    is_online: bool
    change_type: str
    changes: Mapping[str, object]
    device_time: datetime | None


def metric_line(p: MetricPoint) -> str:
    """Line protocol of one reading; a metric the device never sent is left out."""
    point = Point(p.measurement)
    for name, tag in sorted(p.tags.items()):
        point.tag(name, tag)
    for name, value in p.values.items():
        if isinstance(value, float):
            point.field(name, round(value, 6))
        elif value is not None:
            point.field(name, value)
    point.field("is_online", bool(p.is_online))
    return _cdc_line(point, p.time, p.change_type, p.changes, p.device_time)
