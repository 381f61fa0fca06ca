"""The figures of a report: one SQL aggregate per section, over a period."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import psycopg

__all__ = ["KINDS", "Report", "ReportKind", "Section", "gather"]

ReportKind = Literal["daily", "weekly"]
KINDS: tuple[ReportKind, ...] = ("daily", "weekly")


@dataclass(frozen=True, slots=True)
class Section:
    """A titled table."""

    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    note: str = ""


@dataclass(frozen=True, slots=True)
class Report:
    """A report of a period: its sections, in order."""

    kind: ReportKind
    title: str
    start: datetime
    end: datetime
    made_at: datetime
    sections: list[Section] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The figures as ``reports.data`` keeps them."""
        return {
            "kind": self.kind,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "sections": [
                {"title": s.title, "columns": list(s.columns), "rows": [list(r) for r in s.rows],
                 "note": s.note}
                for s in self.sections
            ],
        }  # fmt: skip


_SECTIONS: tuple[tuple[str, tuple[str, ...], str, str], ...] = (
    (
        "Fleet",
        ("kind", "devices", "online now", "seen in the period"),
        "SELECT d.kind, count(*), count(*) FILTER (WHERE s.is_online), "
        "count(*) FILTER (WHERE s.last_seen >= %(start)s) "
        "FROM devices d LEFT JOIN device_status s ON s.device_id = d.id "
        "WHERE d.status = 'active' GROUP BY d.kind ORDER BY d.kind",
        "",
    ),
    (
        "Panel alarms",
        ("alarm type", "raised", "acknowledged", "still open"),
        "SELECT alarm_type::text, count(*), count(*) FILTER (WHERE acknowledged), "
        "count(*) FILTER (WHERE resolved_at IS NULL) FROM alarm_events "
        "WHERE timestamp >= %(start)s AND timestamp < %(end)s AND alarm_type <> 'OUTPUT_EVENT' "
        "GROUP BY 1 ORDER BY 2 DESC, 1",
        "",
    ),
    (
        "Events raised by rules",
        ("rule", "severity", "events", "acknowledged", "resolved", "mean to acknowledge (min)"),
        "SELECT r.name, e.severity, count(*), count(e.acknowledged_at), count(e.resolved_at), "
        "round(avg(extract(epoch FROM e.acknowledged_at - e.timestamp)) / 60.0, 1) "
        "FROM events e JOIN rules r ON r.id = e.rule_id "
        "WHERE e.timestamp >= %(start)s AND e.timestamp < %(end)s "
        "GROUP BY 1, 2 ORDER BY 3 DESC, 1",
        "",
    ),
    (
        "Notifications",
        ("channel", "sent", "failed", "waiting", "mean attempts"),
        "SELECT recipient_type, count(*) FILTER (WHERE status = 'sent'), "
        "count(*) FILTER (WHERE status = 'failed'), "
        "count(*) FILTER (WHERE status IN ('pending', 'held')), round(avg(attempt_count), 2) "
        "FROM notification_deliveries WHERE created_at >= %(start)s AND created_at < %(end)s "
        "GROUP BY 1 ORDER BY 1",
        "",
    ),
    (
        "Commands",
        ("command", "sent", "completed", "failed or timed out", "success rate"),
        "SELECT command_type::text, count(*), count(*) FILTER (WHERE status = 'COMPLETED'), "
        "count(*) FILTER (WHERE status IN ('FAILED', 'TIMEOUT')), "
        "round(100.0 * count(*) FILTER (WHERE status = 'COMPLETED') / count(*), 1) || ' %%' "
        "FROM command_log WHERE timestamp >= %(start)s AND timestamp < %(end)s "
        "GROUP BY 1 ORDER BY 2 DESC",
        "",
    ),
    (
        "Storage savings (change data capture)",
        ("kind", "readings received", "points stored", "reduction"),
        "SELECT d.kind, sum(c.received), sum(c.written), "
        "round(100.0 * (sum(c.received) - sum(c.written)) / nullif(sum(c.received), 0), 1) "
        "|| ' %%' FROM (SELECT device_id, received, written FROM heartbeat_counts "
        "WHERE hour >= %(start)s AND hour < %(end)s UNION ALL SELECT device_id, received, "
        "written FROM heartbeat_counts_daily WHERE day >= %(start)s AND day < %(end)s "
        "AND NOT EXISTS (SELECT 1 FROM heartbeat_counts h WHERE h.device_id = "
        "heartbeat_counts_daily.device_id AND h.hour >= heartbeat_counts_daily.day AND h.hour < "
        "heartbeat_counts_daily.day + interval '1 day')) c JOIN devices d ON d.id = c.device_id "
        "GROUP BY d.kind ORDER BY d.kind",
        "Readings are heartbeats of panels, readings of telemetry devices and robot parts; "
        "a point is stored only when a value leaves its dead band, changes, or 5 minutes pass.",
    ),
)


def gather(
    conn: psycopg.Connection[Any],
    kind: ReportKind,
    start: datetime,
    end: datetime,
    made_at: datetime,
) -> Report:
    """The report of [start, end)."""
    title = f"fleetwatch {kind} report, {start:%Y-%m-%d}" + (
        f" to {end:%Y-%m-%d}" if kind == "weekly" else ""
    )
    sections = []
    for name, columns, query, note in _SECTIONS:
        rows = conn.execute(query, {"start": start, "end": end}).fetchall()
        sections.append(Section(name, columns, [tuple(row) for row in rows], note))
    return Report(kind, title, start, end, made_at, sections)
