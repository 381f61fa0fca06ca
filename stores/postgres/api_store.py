"""What the HTTP API reads from PostgreSQL: devices, their connections and state snapshots,
alarms, commands (one by one and by request), rules.

Rows out (dicts keyed by the API's field names), filtered and paged in SQL, on the caller's
psycopg connection. Every list is ordered by something unique, so pages never overlap.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

__all__ = [
    "alarms", "command_logs", "command_summary", "connection_history", "devices", "known_device",
    "rules", "state_history",
]  # fmt: skip

Row = dict[str, Any]

_DEVICE = (
    "SELECT d.hostname, d.kind, t.name AS device_type, d.zone, d.country, d.name, "
    "d.latitude::float8 AS latitude, d.longitude::float8 AS longitude, "
    "s.is_online, s.last_seen, s.firmware_version AS firmware, s.device_state, "
    "(SELECT count(*) FROM alarm_events a WHERE a.device_id = d.id AND a.resolved_at IS NULL) "
    "AS open_alarms "
    "FROM devices d LEFT JOIN device_status s ON s.device_id = d.id "
    "LEFT JOIN device_types t ON t.id = d.device_type_id WHERE d.active "
)


def _rows(conn: psycopg.Connection[Any], query: str, params: Mapping[str, object]) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return list(cur.fetchall())


def devices(
    conn: psycopg.Connection[Any],
    *,
    hostname: str | None = None,
    kind: str | None = None,
    zone: int | None = None,
    country: str | None = None,
    online: bool | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Row]:
    """Active devices matching every filter given, by hostname."""
    return _rows(
        conn,
        _DEVICE + "AND (%(hostname)s::text IS NULL OR d.hostname = %(hostname)s) "
        "AND (%(kind)s::text IS NULL OR d.kind = %(kind)s) "
        "AND (%(zone)s::int IS NULL OR d.zone = %(zone)s) "
        "AND (%(country)s::text IS NULL OR d.country = %(country)s) "
        "AND (%(online)s::bool IS NULL OR coalesce(s.is_online, false) = %(online)s) "
        "ORDER BY d.hostname, d.id LIMIT %(limit)s OFFSET %(offset)s",
        {"hostname": hostname, "kind": kind, "zone": zone, "country": country,
         "online": online, "limit": limit, "offset": offset},
    )  # fmt: skip


def connection_history(conn: psycopg.Connection[Any], hostname: str, *, limit: int) -> list[Row]:
    """A device's connection events, newest first."""
    return _rows(
        conn,
        "SELECT c.id, c.event::text AS event, c.timestamp, c.details FROM device_connection_log c "
        "JOIN devices d ON d.id = c.device_id WHERE d.hostname = %(hostname)s "
        "ORDER BY c.timestamp DESC, c.id DESC LIMIT %(limit)s",
        {"hostname": hostname, "limit": limit},
    )


def alarms(
    conn: psycopg.Connection[Any],
    *,
    open_only: bool,
    hostname: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Row]:
    """Panel alarms, newest first: open ones only, or every one since ``since``."""
    return _rows(
        conn,
        "SELECT a.id, d.hostname, a.alarm_type::text AS alarm_type, "
        "a.event_state::text AS event_state, a.priority::text AS priority, a.timestamp, "
        "a.resolved_at, a.acknowledged, a.acknowledged_by, a.acknowledged_at, a.notes "
        "FROM alarm_events a JOIN devices d ON d.id = a.device_id "
        "WHERE (NOT %(open)s OR a.resolved_at IS NULL) "
        "AND (%(hostname)s::text IS NULL OR d.hostname = %(hostname)s) "
        "AND (%(since)s::timestamptz IS NULL OR a.timestamp >= %(since)s) "
        "ORDER BY a.timestamp DESC, a.id DESC LIMIT %(limit)s OFFSET %(offset)s",
        {"open": open_only, "hostname": hostname, "since": since, "limit": limit,
         "offset": offset},
    )  # fmt: skip


def command_logs(
    conn: psycopg.Connection[Any],
    *,
    status: str | None = None,
    command_type: str | None = None,
    hostname: str | None = None,
    device_type: str | None = None,
    command_id: str | None = None,
    request_ids: list[str] | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Row]:
    """Commands to one device each, newest first, filtered by status, type, device, device
    type (the name of its declared type, or its kind), request (``command_id``) or request
    id."""
    return _rows(
        conn,
        "SELECT c.request_id::text AS request_id, c.fanout_id::text AS command_id, d.hostname, "
        "d.kind, c.command_type::text AS command_type, c.command_data, c.auth_level, "
        "c.status::text AS status, c.timestamp AS created_at, c.sent_at, c.acknowledged_at, "
        "c.completed_at, c.failed_at, c.response_code, c.error_message, c.retry_count, "
        "c.initiated_by FROM command_log c JOIN devices d ON d.id = c.device_id "
        "LEFT JOIN device_types t ON t.id = d.device_type_id "
        "WHERE (%(status)s::text IS NULL OR c.status::text = %(status)s) "
        "AND (%(type)s::text IS NULL OR c.command_type::text = %(type)s) "
        "AND (%(hostname)s::text IS NULL OR d.hostname = %(hostname)s) "
        "AND (%(device_type)s::text IS NULL OR t.name = %(device_type)s "
        "     OR d.kind = %(device_type)s) "
        "AND (%(fanout)s::uuid IS NULL OR c.fanout_id = %(fanout)s::uuid) "
        "AND (%(ids)s::uuid[] IS NULL OR c.request_id = ANY(%(ids)s::uuid[])) "
        "ORDER BY c.timestamp DESC, c.id DESC LIMIT %(limit)s OFFSET %(offset)s",
        {"status": status, "type": command_type, "hostname": hostname,
         "device_type": device_type, "fanout": command_id, "ids": request_ids, "limit": limit,
         "offset": offset},
    )  # fmt: skip


# Seed 003's status of a request over all its devices: "created" while none has been sent,
# "ack_success" / "ack_error" once every one is finished, "sent" in between (some in flight,
# or some finished while others still wait for their device).
_FINISHED = "c.status IN ('COMPLETED', 'FAILED', 'CANCELLED')"
_SUMMARY = (
    "SELECT c.fanout_id::text AS command_id, "  # noqa: S608 - fixed SQL text
    "CASE WHEN count(DISTINCT t.name) = 1 AND count(t.name) = count(*) THEN min(t.name) END "
    "AS device_type, (array_agg(c.command_data ORDER BY c.id))[1] AS command_data, "
    "min(c.command_type::text) AS command_type, "
    "CASE WHEN bool_and(c.status = 'PENDING') THEN 'created' "
    f"WHEN bool_and({_FINISHED}) THEN "
    "  CASE WHEN bool_and(c.status = 'COMPLETED') THEN 'ack_success' ELSE 'ack_error' END "
    "ELSE 'sent' END AS status, "
    "min(c.timestamp) AS created_at, min(c.sent_at) AS executed_at, "
    f"CASE WHEN bool_and({_FINISHED}) THEN max(coalesce(c.completed_at, c.failed_at, "
    # A cancellation keeps no time of its own: the row's last change is it.
    "  CASE WHEN c.status = 'CANCELLED' THEN c.updated_at END)) END AS completed_at, "
    "count(*) AS target_device_count, "
    "count(*) FILTER (WHERE c.status = 'COMPLETED') AS success_count "
    "FROM command_log c JOIN devices d ON d.id = c.device_id "
    "LEFT JOIN device_types t ON t.id = d.device_type_id "
    "WHERE c.fanout_id = %(id)s::uuid GROUP BY c.fanout_id"
)


def command_summary(conn: psycopg.Connection[Any], command_id: str) -> Row | None:
    """One request to many devices (seed 003's command log), None when there is none: its
    ``command_name`` and ``payload`` (as ``CommandSpec.as_json`` stored them), the device
    type when all its devices have the same, its status over all of them, when it was
    created, first sent and last finished, and how many devices it went to and completed."""
    rows = _rows(conn, _SUMMARY, {"id": command_id})
    if not rows:
        return None
    row = rows[0]
    data = row.pop("command_data") or {}
    name, payload = next(iter(data.items())) if len(data) == 1 else (row["command_type"], data)
    return row | {"command_name": name, "payload": payload if isinstance(payload, dict) else {}}


def known_device(conn: psycopg.Connection[Any], hostname: str) -> bool:
    """Whether any device, active or not, has ever been called ``hostname``."""
    found = conn.execute("SELECT 1 FROM devices WHERE hostname = %s LIMIT 1", [hostname])
    return found.fetchone() is not None


def state_history(
    conn: psycopg.Connection[Any], hostname: str, *, limit: int, offset: int = 0
) -> list[Row]:
    """A device's state snapshots (seed 003), newest first; ``device_id`` is its hostname."""
    return _rows(
        conn,
        "SELECT s.id, d.hostname AS device_id, s.device_type, s.state_data, s.timestamp "
        "FROM device_state_snapshots s JOIN devices d ON d.id = s.device_id "
        "WHERE d.hostname = %(hostname)s "
        "ORDER BY s.timestamp DESC, s.id DESC LIMIT %(limit)s OFFSET %(offset)s",
        {"hostname": hostname, "limit": limit, "offset": offset},
    )


def rules(
    conn: psycopg.Connection[Any],
    *,
    enabled: bool | None = None,
    kind: str | None = None,
    scope: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Row]:
    """Rule rows by name, filtered by whether they are enabled, the declaration they watch
    (``kind``) and their scope type."""
    return _rows(
        conn,
        "SELECT * FROM rules WHERE (%(enabled)s::bool IS NULL OR is_enabled = %(enabled)s) "
        "AND (%(kind)s::text IS NULL OR kind = %(kind)s) "
        "AND (%(scope)s::text IS NULL OR scope_type = %(scope)s) "
        "ORDER BY name LIMIT %(limit)s OFFSET %(offset)s",
        {"enabled": enabled, "kind": kind, "scope": scope, "limit": limit, "offset": offset},
    )
