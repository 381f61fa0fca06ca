"""What the HTTP API reads from PostgreSQL: devices, their connections, alarms, commands.

Rows out (dicts keyed by the API's field names), filtered and paged in SQL, on the caller's
psycopg connection. Every list is ordered by something unique, so pages never overlap.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

__all__ = ["alarms", "command_logs", "connection_history", "devices"]

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
    kind: str | None = None,
    request_ids: list[str] | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Row]:
    """Commands, newest first, filtered by status, type, device, device kind or request id."""
    return _rows(
        conn,
        "SELECT c.request_id::text AS request_id, d.hostname, d.kind, "
        "c.command_type::text AS command_type, c.command_data, c.auth_level, "
        "c.status::text AS status, c.timestamp AS created_at, c.sent_at, c.acknowledged_at, "
        "c.completed_at, c.failed_at, c.response_code, c.error_message, c.retry_count, "
        "c.initiated_by FROM command_log c JOIN devices d ON d.id = c.device_id "
        "WHERE (%(status)s::text IS NULL OR c.status::text = %(status)s) "
        "AND (%(type)s::text IS NULL OR c.command_type::text = %(type)s) "
        "AND (%(hostname)s::text IS NULL OR d.hostname = %(hostname)s) "
        "AND (%(kind)s::text IS NULL OR d.kind = %(kind)s) "
        "AND (%(ids)s::uuid[] IS NULL OR c.request_id = ANY(%(ids)s::uuid[])) "
        "ORDER BY c.timestamp DESC, c.id DESC LIMIT %(limit)s OFFSET %(offset)s",
        {"status": status, "type": command_type, "hostname": hostname, "kind": kind,
         "ids": request_ids, "limit": limit, "offset": offset},
    )  # fmt: skip
