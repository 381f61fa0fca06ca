"""command_log operations: create, dispatch, time out, respond, cancel, list.

Every timer lives in command_log (``next_retry_at``, ``expires_at``), so a restarted ingest
resumes exactly where the last one stopped, and ``FOR UPDATE SKIP LOCKED`` lets several ingest
processes share the work without sending a command twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

OPEN = ("PENDING", "SENT", "TIMEOUT", "ACKNOWLEDGED")

_ROW_COLUMNS = """
    c.id, c.device_id, d.hostname, c.request_id::text AS request_id, c.sequence,
    c.timestamp, c.command_type::text AS command_type, c.command_data, c.auth_level,
    c.status::text AS status, c.sent_at, c.acknowledged_at, c.completed_at, c.failed_at,
    c.response_data, c.response_code, c.error_message, c.retry_count, c.max_retries,
    c.next_retry_at, c.expires_at, c.initiated_by, c.notes, c.created_at, d.kind,
    c.fanout_id::text AS fanout_id
"""


@dataclass(frozen=True, slots=True)
class CommandRow:
    """One command_log row with its device's hostname."""

    id: int
    device_id: int
    hostname: str | None
    request_id: str
    sequence: int | None
    timestamp: datetime
    command_type: str
    command_data: dict[str, Any]
    auth_level: int | None
    status: str
    sent_at: datetime | None
    acknowledged_at: datetime | None
    completed_at: datetime | None
    failed_at: datetime | None
    response_data: dict[str, Any] | None
    response_code: int | None
    error_message: str | None
    retry_count: int
    max_retries: int
    next_retry_at: datetime | None
    expires_at: datetime | None
    initiated_by: str | None
    notes: str | None
    created_at: datetime
    kind: str = "panel"  # the device's kind: how the command is encoded for it
    fanout_id: str | None = None  # shared by the commands of one request (seed 003's command_id)


@dataclass(frozen=True, slots=True)
class NewCommand:
    """A command to create for one device."""

    device_id: int
    command_type: str
    command_data: Mapping[str, Any]
    auth_level: int
    initiated_by: str
    max_retries: int
    expires_at: datetime | None
    fanout_id: uuid.UUID | None = None  # the request it belongs to, with its other devices'


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetFilter:
    """Which devices a command goes to; empty fields do not filter."""

    hostnames: Sequence[str] = ()
    zone: int | None = None
    country: str | None = None
    firmware: str | None = None
    online: bool | None = None
    device_type: str | None = None  # the name of the devices' declared type (ESP32, ...)
    every_device: bool = False

    def __post_init__(self) -> None:
        if not (self.every_device or self.hostnames or self._has_filter()):
            raise ValueError("name devices, give a filter, or choose every device explicitly")

    def _has_filter(self) -> bool:
        return any(
            v is not None
            for v in (self.zone, self.country, self.firmware, self.online, self.device_type)
        )


def _rows(conn: psycopg.Connection[Any], query: str, params: Sequence[Any]) -> list[CommandRow]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return [CommandRow(**row) for row in cur.fetchall()]


def select_targets(conn: psycopg.Connection[Any], target: TargetFilter) -> list[int]:
    """Active device ids matching the filter, in id order."""
    clauses = [sql.SQL("d.active")]
    params: list[Any] = []
    if target.hostnames:
        clauses.append(sql.SQL("d.hostname = ANY(%s)"))
        params.append(list(target.hostnames))
    for column, value in (
        ("d.zone", target.zone),
        ("d.country", target.country),
        ("s.firmware_version", target.firmware),
        ("s.is_online", target.online),
    ):
        if value is not None:
            clauses.append(sql.SQL(column + " = %s"))
            params.append(value)
    if target.device_type is not None:
        clauses.append(sql.SQL("d.device_type_id IN (SELECT id FROM device_types WHERE name = %s)"))
        params.append(target.device_type)
    query = sql.SQL(
        "SELECT d.id FROM devices d JOIN device_status s ON s.device_id = d.id "
        "WHERE {} ORDER BY d.id"
    ).format(sql.SQL(" AND ").join(clauses))
    return [row[0] for row in conn.execute(query, params).fetchall()]


def create(
    conn: psycopg.Connection[Any], commands: Sequence[NewCommand], now: datetime
) -> list[CommandRow]:
    """Insert PENDING commands, each with a new request id and its device's next sequence.

    The devices are locked (FOR NO KEY UPDATE, which foreign-key checks do not wait for) so two
    callers cannot hand out the same sequence number.
    """
    if not commands:
        return []
    device_ids = sorted({c.device_id for c in commands})
    conn.execute(
        "SELECT id FROM devices WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE", [device_ids]
    )
    last = dict(
        conn.execute(
            "SELECT device_id, coalesce(max(sequence), 0) FROM command_log "
            "WHERE device_id = ANY(%s) GROUP BY device_id",
            [device_ids],
        ).fetchall()
    )
    ids = []
    for command in commands:
        last[command.device_id] = last.get(command.device_id, 0) + 1
        row = conn.execute(
            "INSERT INTO command_log (device_id, request_id, sequence, timestamp, command_type, "
            "command_data, auth_level, status, max_retries, expires_at, initiated_by, fanout_id) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, 'PENDING', %s, %s, %s, %s) RETURNING id",
            [
                command.device_id,
                uuid.uuid4(),
                last[command.device_id],
                now,
                command.command_type,
                Jsonb(dict(command.command_data)),
                command.auth_level,
                command.max_retries,
                command.expires_at,
                command.initiated_by,
                command.fanout_id,
            ],
        ).fetchone()
        assert row is not None
        ids.append(row[0])
    return by_ids(conn, ids)


def by_ids(conn: psycopg.Connection[Any], ids: Sequence[int]) -> list[CommandRow]:
    """Commands by id, in the given order."""
    rows = _rows(
        conn,
        f"SELECT {_ROW_COLUMNS} FROM command_log c JOIN devices d ON d.id = c.device_id "  # noqa: S608
        "WHERE c.id = ANY(%s)",
        [list(ids)],
    )
    order = {command_id: i for i, command_id in enumerate(ids)}
    return sorted(rows, key=lambda r: order[r.id])


def by_request_ids(
    conn: psycopg.Connection[Any], request_ids: Iterable[str], *, lock: bool = False
) -> dict[str, CommandRow]:
    """Commands by request id (locked until commit when ``lock``)."""
    wanted = sorted(set(request_ids))
    if not wanted:
        return {}
    suffix = " ORDER BY c.id FOR UPDATE OF c" if lock else ""
    rows = _rows(
        conn,
        f"SELECT {_ROW_COLUMNS} FROM command_log c JOIN devices d ON d.id = c.device_id "  # noqa: S608
        "WHERE c.request_id = ANY(%s::uuid[])" + suffix,
        [wanted],
    )
    return {row.request_id: row for row in rows}


def update(conn: psycopg.Connection[Any], command_id: int, changes: Mapping[str, Any]) -> None:
    """Set columns of one command."""
    if not changes:
        return
    values = [Jsonb(v) if isinstance(v, dict) else v for v in changes.values()]
    query = sql.SQL("UPDATE command_log SET {} WHERE id = %s").format(
        sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in changes)
    )
    conn.execute(query, [*values, command_id])


def open_sync_commands(conn: psycopg.Connection[Any], device_ids: Iterable[int]) -> set[int]:
    """Devices that already have a SET_DEVICE_ID command in flight."""
    ids = sorted(set(device_ids))
    if not ids:
        return set()
    rows = conn.execute(
        "SELECT DISTINCT device_id FROM command_log WHERE device_id = ANY(%s) "
        "AND command_data ? 'set_device_id' AND status = ANY(%s::command_status_enum[])",
        [ids, list(OPEN)],
    ).fetchall()
    return {row[0] for row in rows}


def expire_and_time_out(
    conn: psycopg.Connection[Any],
    now: datetime,
    backoff_base: timedelta,
    backoff_max: timedelta,
    ack_timeout: timedelta,
) -> dict[str, int]:
    """Advance every overdue command; returns how many moved, by what happened.

    - PENDING past expires_at: FAILED (never delivered: the device stayed offline).
    - SENT past its acknowledgement deadline: TIMEOUT with the next retry scheduled by
      exponential backoff, or FAILED once max_retries retries were spent.
    - ACKNOWLEDGED past its completion deadline: FAILED (not retried: the device has it).
    """
    counts: dict[str, int] = {}
    counts["expired"] = conn.execute(
        "UPDATE command_log SET status = 'FAILED', failed_at = %s, next_retry_at = NULL, "
        "error_message = 'expired before the device was online to receive it' "
        "WHERE status = 'PENDING' AND expires_at <= %s",
        [now, now],
    ).rowcount
    counts["retry_scheduled"] = conn.execute(
        "UPDATE command_log SET status = 'TIMEOUT', retry_count = retry_count + 1, "
        "error_message = 'no acknowledgement within ' || %s || ' s', "
        "next_retry_at = %s + LEAST(%s * power(2, retry_count), %s) * interval '1 second' "
        "WHERE status = 'SENT' AND next_retry_at <= %s AND retry_count < max_retries",
        [
            int(ack_timeout.total_seconds()),
            now,
            backoff_base.total_seconds(),
            backoff_max.total_seconds(),
            now,
        ],
    ).rowcount
    counts["retries_exhausted"] = conn.execute(
        "UPDATE command_log SET status = 'FAILED', failed_at = %s, next_retry_at = NULL, "
        "error_message = 'no acknowledgement after ' || (retry_count + 1) || ' attempts' "
        "WHERE status = 'SENT' AND next_retry_at <= %s AND retry_count >= max_retries",
        [now, now],
    ).rowcount
    counts["not_completed"] = conn.execute(
        "UPDATE command_log SET status = 'FAILED', failed_at = %s, next_retry_at = NULL, "
        "error_message = 'acknowledged but not completed in time' "
        "WHERE status = 'ACKNOWLEDGED' AND next_retry_at <= %s",
        [now, now],
    ).rowcount
    return counts


def claim_sendable(
    conn: psycopg.Connection[Any],
    now: datetime,
    limit: int,
    transports: Sequence[str] | None = None,
) -> list[CommandRow]:
    """Lock commands due for (re)sending to online devices (of ``transports``, or any);
    commit after publishing them.

    SKIP LOCKED: another ingest process holding some of them simply gets the others.
    """
    wanted = None if transports is None else list(transports)
    return _rows(
        conn,
        f"SELECT {_ROW_COLUMNS} FROM command_log c "  # noqa: S608
        "JOIN devices d ON d.id = c.device_id "
        "JOIN device_status s ON s.device_id = c.device_id "
        "WHERE s.is_online AND (c.expires_at IS NULL OR c.expires_at > %s) AND ("
        "  c.status = 'PENDING' OR (c.status = 'TIMEOUT' AND c.next_retry_at <= %s)) "
        "AND (%s::text[] IS NULL OR d.transport = ANY(%s::text[])) "
        "ORDER BY c.id LIMIT %s FOR UPDATE OF c SKIP LOCKED",
        [now, now, wanted, wanted, limit],
    )


def mark_sent(
    conn: psycopg.Connection[Any], ids: Sequence[int], now: datetime, ack_timeout: timedelta
) -> None:
    """Published: SENT, with the acknowledgement deadline as the next check."""
    if ids:
        conn.execute(
            "UPDATE command_log SET status = 'SENT', sent_at = %s, next_retry_at = %s "
            "WHERE id = ANY(%s)",
            [now, now + ack_timeout, list(ids)],
        )


def mark_unsendable(
    conn: psycopg.Connection[Any], failures: Mapping[int, str], now: datetime
) -> None:
    """Commands that can never be sent (their stored payload does not encode): FAILED with
    the reason, so the dispatcher stops claiming them."""
    if failures:
        conn.execute(
            "UPDATE command_log c SET status = 'FAILED', failed_at = %s, next_retry_at = NULL, "
            "error_message = 'cannot be sent: ' || f.reason "
            "FROM unnest(%s::bigint[], %s::text[]) AS f(id, reason) WHERE c.id = f.id",
            [now, list(failures), list(failures.values())],
        )


def cancel(
    conn: psycopg.Connection[Any], request_ids: Sequence[str], now: datetime, by: str
) -> list[str]:
    """Cancel open commands; returns the request ids actually cancelled."""
    rows = conn.execute(
        "UPDATE command_log SET status = 'CANCELLED', next_retry_at = NULL, "
        "notes = coalesce(notes || '; ', '') || 'cancelled by ' || %s || ' at ' || %s "
        "WHERE request_id = ANY(%s::uuid[]) AND status = ANY(%s::command_status_enum[]) "
        "RETURNING request_id::text",
        [by, now.isoformat(timespec="seconds"), list(request_ids), list(OPEN)],
    ).fetchall()
    return [row[0] for row in rows]


def recent(
    conn: psycopg.Connection[Any],
    *,
    status: str | None = None,
    hostname: str | None = None,
    limit: int = 50,
) -> list[CommandRow]:
    """The newest commands, optionally of one status or device."""
    clauses, params = ["TRUE"], []
    if status:
        clauses.append("c.status = %s")
        params.append(status)
    if hostname:
        clauses.append("d.hostname = %s")
        params.append(hostname)
    return _rows(
        conn,
        f"SELECT {_ROW_COLUMNS} FROM command_log c JOIN devices d ON d.id = c.device_id "  # noqa: S608
        f"WHERE {' AND '.join(clauses)} ORDER BY c.id DESC LIMIT %s",
        [*params, limit],
    )
