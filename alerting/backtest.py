""" "Test this rule on the last 24 h": replay a rule over the stored history.

The history is CDC-thinned: a value inside its dead band of the stored one was not written,
so the replay sees each subject's values as a step function within that dead band of what
was received. A threshold nearer to the stored values than a dead band may fire a little
later or earlier than it would have on every received value; a ``for`` is measured between
stored points. Panel alarms replay from the ``alarm`` measurement, where every change is
stored. Nothing is written: the events are only listed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from influxdb_client.client.influxdb_client import InfluxDBClient

from alerting.evaluate import Open, Raise, Resolve, RuleState, evaluate
from alerting.rules import Rule, Severity
from alerting.values import ALARM_INPUTS, DEVICE, alarm_metric
from ingest.kinds import registered
from stores.influx.client import api_errors
from stores.influx.points import ALARM, HEARTBEAT, TELEMETRY

__all__ = ["Fired", "backtest"]

_RUNNING = ("ACTIVE", "STARTING", "STOPPING")
_PRIORITY = {
    "CRITICAL": Severity.CRITICAL,
    "HIGH": Severity.CRITICAL,
    "MEDIUM": Severity.WARNING,
    "LOW": Severity.INFO,
}


@dataclass(slots=True)
class Fired:
    """An event the rule would have raised."""

    subject: str
    opened: datetime
    severity: Severity
    value: float
    resolved: datetime | None = None


def _string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _query(rule: Rule, bucket: str, start: datetime, stop: datetime) -> str:
    """Flux of the stored values the rule reads, one row per point: _time, subject, value."""
    head = (
        f"from(bucket: {_string(bucket)}) |> range(start: {start.isoformat()}, "
        f"stop: {stop.isoformat()})"
    )
    alarms = {alarm_metric(t): t for t in ALARM_INPUTS}
    if rule.kind == "panel" and rule.metric in alarms:
        return (
            f"{head} |> filter(fn: (r) => r._measurement == {_string(ALARM)} and "
            f"r.alarm_type == {_string(alarms[rule.metric])} and "
            '(r._field == "event_state" or r._field == "priority"))'
            ' |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")'
            ' |> keep(columns: ["_time", "hostname", "event_state", "priority"])'
        )
    measurements: tuple[str, ...]
    if rule.kind == DEVICE:
        measurements, field = (HEARTBEAT, TELEMETRY), "is_online"
    elif rule.kind == "panel":
        measurements, field = (HEARTBEAT,), rule.metric
    elif rule.kind == "telemetry":
        measurements, field = (TELEMETRY,), rule.metric
    else:
        measurement = registered(rule.kind).measurement
        measurements, field = (measurement or rule.kind,), rule.metric
    wanted = " or ".join(f"r._measurement == {_string(m)}" for m in measurements)
    return (
        f"{head} |> filter(fn: (r) => ({wanted}) and r._field == {_string(field)})"
        ' |> drop(columns: ["_start", "_stop", "_field", "_measurement", "change_type"])'
    )


def _subject(record: dict[str, Any]) -> str:
    name = record.get("hostname") or record.get("robot_id") or record.get("device_id") or "?"
    part = record.get("servo_id") or record.get("sensor_type") or ""
    return f"{name} {part}".strip()


def backtest(
    client: InfluxDBClient,
    bucket: str,
    rule: Rule,
    *,
    start: datetime,
    stop: datetime,
    org: str,
) -> list[Fired]:
    """The events ``rule`` would have raised on the history of [start, stop), by time."""
    with api_errors(client, f"reading the history of {rule.kind}.{rule.metric}"):
        tables = client.query_api().query(_query(rule, bucket, start, stop), org=org)
    series: dict[str, list[tuple[datetime, float, Severity | None]]] = defaultdict(list)
    for table in tables:
        for record in table.records:
            values = record.values
            if "event_state" in values:
                value = 1.0 if values.get("event_state") in _RUNNING else 0.0
                hint = _PRIORITY.get(str(values.get("priority")))
            else:
                raw = values.get("_value")
                if raw is None or isinstance(raw, str):
                    continue
                value, hint = float(raw), None
            series[_subject(values)].append((values["_time"], value, hint))
    fired: list[Fired] = []
    for subject, points in series.items():
        state, current = RuleState(), None
        for at, value, hint in sorted(points, key=lambda p: p[0]):
            match evaluate(rule, state, value, at, hint):
                case Open() as opened:
                    current = Fired(subject, at, opened.severity, value)
                    fired.append(current)
                case Raise() as raised if current is not None:
                    current.severity = raised.severity
                case Resolve() if current is not None:
                    current.resolved, current = at, None
                case _:
                    pass
    return sorted(fired, key=lambda f: f.opened)
