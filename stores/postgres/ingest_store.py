"""PostgreSQL operations of the ingest hot path: set-based, one round trip per intent.

Ingest writes a whole micro-batch in one transaction. Every multi-row write passes one array
per column and ``unnest``s them server-side, so a batch of thousands of messages costs a
handful of statements, whatever its size. The per-device arrays of the hot path (status
patches, CDC states, heartbeat counts) go in binary (``%b``): as text, psycopg builds each
array in Python, matching every element against a quoting regex, about five times slower.
Table and column names come from ``schema``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from sqlalchemy import Column, Table
from sqlalchemy.dialects import postgresql

from stores.errors import StoreUnavailableError
from stores.postgres import commands_store, jobs_store, schema
from stores.postgres import device_types as type_store
from stores.postgres.partitions import Share, share_filter

logger = logging.getLogger(__name__)

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def sql_type(column: Column[Any]) -> str:
    """The PostgreSQL type of a schema column, for casting arrays (``real``, ``inet``, …)."""
    return str(column.type.compile(dialect=_DIALECT))


@dataclass(frozen=True, slots=True)
class NewDevice:
    """A device seen for the first time (from its StatusMessage)."""

    mac: str
    hostname: str
    country: str | None
    zone: int | None
    latitude: float | None
    longitude: float | None


@dataclass(frozen=True, slots=True)
class DeviceView:
    """What ingest needs to know about one device before applying a batch to it."""

    device_id: int
    kind: str
    device_type_id: UUID | None
    mac: str | None
    hostname: str | None
    country: str | None
    zone: int | None
    latitude: float | None
    longitude: float | None
    is_online: bool
    device_state: str
    last_alarm_sequence: int | None
    panic1: bool
    panic2: bool
    box_sw: bool
    siren: bool
    turret: bool
    panic1_count: int
    panic2_count: int
    tamper_count: int
    temperature: float | None
    humidity: float | None
    fan_pwm_duty: int | None
    uptime: int | None
    device_synced: bool
    sync_attempts: int
    last_sync_attempt: datetime | None
    last_seen: datetime | None


@dataclass(frozen=True, slots=True)
class CdcRow:
    """One device's CDC reference as persisted (see heartbeat_cdc_state)."""

    device_id: int
    written_at: datetime
    temperature: float
    humidity: float
    fan_pwm_duty: int
    panic1: bool
    panic2: bool
    box_sw: bool
    siren: bool
    turret: bool
    device_state: str | None
    is_online: bool
    last_device_ts: datetime | None


@dataclass(frozen=True, slots=True)
class MetricStateRow:
    """The CDC reference of a device of a declared type (see device_cdc_state)."""

    device_id: int
    kind: str
    written_at: datetime
    values: Mapping[str, bool | int | float | str | None]
    is_online: bool
    last_device_ts: datetime | None
    stream: str = ""  # "" for a device's one history; "battery", "servos/servo_1", ...


@dataclass(frozen=True, slots=True, kw_only=True)
class JobChange:
    """A robot's report on one job, as ``apply_jobs`` merges it into ``jobs``."""

    device_id: int
    robot_id: str
    job_key: str
    at: datetime
    items_total: int | None
    items_done: int
    last_item: Mapping[str, object] | None
    status: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected message, kept whole."""

    topic: str
    payload: bytes
    reason: str
    detail: str
    received_at: datetime
    redelivered: bool = False  # kept only if the same message was not dead-lettered lately


@dataclass(frozen=True, slots=True)
class AlarmChange:
    """One change to alarm_events, applied in message order.

    ``action`` is ``open`` (insert, or update the open event of the same kind), ``update``
    (change the open event's state), ``resolve`` (close the open event) or ``record``
    (an already-closed event, e.g. a TEST).
    """

    action: str
    device_id: int
    alarm_type: str
    output_type: int | None
    sequence: int | None
    timestamp: datetime
    device_timestamp: datetime | None
    event_state: str
    priority: str
    physical_state: bool
    pattern_type: int | None
    duration_seconds: int
    elapsed_seconds: int
    metadata: str = "{}"  # JSON


@dataclass(frozen=True, slots=True)
class ConnectionChange:
    """A row of device_connection_log."""

    device_id: int
    event: str
    timestamp: datetime
    details: str  # JSON text


_VIEW_SQL = sql.SQL(
    """
    SELECT d.id AS device_id, d.kind, d.device_type_id, d.mac_address::text AS mac,
           d.hostname, d.country, d.zone, d.latitude::float8, d.longitude::float8,
           s.is_online, s.device_state, s.last_alarm_sequence,
           s.panic1, s.panic2, s.box_sw, s.siren, s.turret,
           s.panic1_count, s.panic2_count, s.tamper_count,
           s.temperature, s.humidity, s.fan_pwm_duty, s.uptime,
           s.device_synced, s.sync_attempts, s.last_sync_attempt, s.last_seen
      FROM {devices} d JOIN {status} s ON s.device_id = d.id
     WHERE d.id = ANY(%s)
     ORDER BY d.id
       FOR UPDATE OF s
    """
).format(devices=sql.Identifier("devices"), status=sql.Identifier("device_status"))


class BatchTx:
    """The operations available inside one batch transaction."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The transaction's connection, for stores whose writes join the batch (alerting)."""
        return self._conn

    def find_by_mac(self, macs: Iterable[str]) -> dict[str, int]:
        """Known device ids by MAC (``aa:bb:…`` form)."""
        rows = self._conn.execute(
            "SELECT mac_address::text, id FROM devices WHERE mac_address = ANY(%s::macaddr[])",
            [sorted(set(macs))],
        ).fetchall()
        return dict(rows)

    def find_by_hostname(self, hostnames: Iterable[str]) -> dict[str, int]:
        """Known device ids by hostname (the newest device when a hostname was reused)."""
        rows = self._conn.execute(
            "SELECT DISTINCT ON (hostname) hostname, id FROM devices "
            "WHERE hostname = ANY(%s) ORDER BY hostname, id DESC",
            [sorted(set(hostnames))],
        ).fetchall()
        return dict(rows)

    def register(self, new: Sequence[NewDevice]) -> dict[str, int]:
        """Create devices and their status rows; concurrent registrations of a MAC are safe."""
        if not new:
            return {}
        self._conn.execute(
            """
            WITH added AS (
              INSERT INTO devices (mac_address, hostname, country, zone, latitude, longitude)
              SELECT * FROM unnest(%s::macaddr[], %s::varchar[], %s::varchar[], %s::int[],
                                   %s::numeric[], %s::numeric[])
              ON CONFLICT (mac_address) DO NOTHING
              RETURNING id)
            INSERT INTO device_status (device_id) SELECT id FROM added
            """,
            [
                [d.mac for d in new],
                [d.hostname for d in new],
                [d.country for d in new],
                [d.zone for d in new],
                [d.latitude for d in new],
                [d.longitude for d in new],
            ],
        )
        return self.find_by_mac(d.mac for d in new)

    def find_by_serial(self, serials: Iterable[str]) -> dict[str, int]:
        """Ids of the devices (of any kind but panels) with these serial numbers."""
        rows = self._conn.execute(
            "SELECT serial_number, id FROM devices WHERE serial_number = ANY(%s)",
            [sorted(set(serials))],
        ).fetchall()
        return {str(serial): int(device_id) for serial, device_id in rows}

    def register_typed(self, kind: str, new: Mapping[str, UUID]) -> dict[str, int]:
        """Create devices of ``kind`` (serial -> device type), named and addressed by their
        serial, each with its status row; returns every id by serial, existing ones too."""
        if new:
            self._conn.execute(
                """
                WITH added AS (
                  INSERT INTO devices (kind, serial_number, hostname, name, device_type_id)
                  SELECT %s, serial, serial, serial, type_id
                    FROM unnest(%s::varchar[], %s::uuid[]) AS n(serial, type_id)
                  ON CONFLICT (serial_number) DO NOTHING
                  RETURNING id)
                INSERT INTO device_status (device_id) SELECT id FROM added
                """,
                [kind, list(new), list(new.values())],
            )
        return self.find_by_serial(new)

    def device_types(self, type_ids: Iterable[UUID]) -> list[type_store.DeviceTypeRow]:
        """The device types of these ids, with their metrics."""
        ids = sorted(set(type_ids))
        return type_store.load(self._conn, ids=ids) if ids else []

    def device_types_named(self, names: Iterable[str]) -> dict[str, type_store.DeviceTypeRow]:
        """The device types among ``names``, by name."""
        return type_store.by_name(self._conn, names)

    def save_metric_states(self, rows: Sequence[MetricStateRow]) -> None:
        """Persist the CDC references of devices of declared types that changed."""
        if rows:
            self._conn.execute(
                "INSERT INTO device_cdc_state (device_id, stream, written_at, values, is_online, "
                "last_device_ts) SELECT * FROM unnest(%s::int[], %s::varchar[], "
                "%s::timestamptz[], %s::jsonb[], %s::bool[], %s::timestamptz[]) "
                "ON CONFLICT (device_id, stream) DO UPDATE "
                "SET written_at = EXCLUDED.written_at, values = EXCLUDED.values, "
                "is_online = EXCLUDED.is_online, last_device_ts = EXCLUDED.last_device_ts",
                [
                    [r.device_id for r in rows],
                    [r.stream for r in rows],
                    [r.written_at for r in rows],
                    [Jsonb(dict(r.values)) for r in rows],
                    [r.is_online for r in rows],
                    [r.last_device_ts for r in rows],
                ],
            )

    def find_robots(self, robot_ids: Iterable[str]) -> dict[str, int]:
        """Device ids of the robots with these robot_ids."""
        wanted = sorted(set(robot_ids))
        if not wanted:
            return {}
        rows = self._conn.execute(
            "SELECT robot_id, device_id FROM robots WHERE robot_id = ANY(%s)", [wanted]
        ).fetchall()
        return {str(robot_id): int(device_id) for robot_id, device_id in rows}

    def register_robots(self, robot_ids: Iterable[str]) -> dict[str, int]:
        """Create robots (a devices row of kind 'robot', its status row and its robots row,
        all named by the robot_id); returns every id by robot_id, existing ones too."""
        wanted = sorted(set(robot_ids))
        self._conn.execute(
            """
            WITH added AS (
              INSERT INTO devices (kind, hostname, name)
              SELECT 'robot', r, r FROM unnest(%s::varchar[]) AS r
              WHERE NOT EXISTS (SELECT 1 FROM robots WHERE robot_id = r)
              RETURNING id, hostname),
            status AS (INSERT INTO device_status (device_id) SELECT id FROM added)
            INSERT INTO robots (device_id, robot_id, name, status)
            SELECT id, hostname, hostname, 'online' FROM added
            ON CONFLICT (robot_id) DO NOTHING
            """,
            [wanted],
        )
        return self.find_robots(wanted)

    def patch_robots(self, patches: Mapping[int, Mapping[str, object]]) -> None:
        """Apply per-robot column patches to ``robots`` (JSON columns given as dicts)."""
        wrapped = {
            device_id: {
                name: Jsonb(value) if isinstance(value, dict) else value
                for name, value in patch.items()
            }
            for device_id, patch in patches.items()
        }
        _patch(self._conn, schema.robots, "device_id", wrapped)

    def apply_jobs(self, changes: Sequence[JobChange]) -> None:
        """Merge job reports in order: a new job starts at its first report; later ones only
        raise the items done, finish it, and never touch a finished job."""
        for change in changes:
            self._conn.execute(
                _JOB_SQL,
                {
                    "device_id": change.device_id,
                    "robot_id": change.robot_id,
                    "job_key": change.job_key,
                    "at": change.at,
                    "total": change.items_total,
                    "done": change.items_done,
                    "last": None if change.last_item is None else Jsonb(dict(change.last_item)),
                    "status": change.status,
                    "reason": change.reason,
                },
            )

    def lock_views(self, device_ids: Iterable[int]) -> dict[int, DeviceView]:
        """Current state of the devices, locked until commit (in id order: no deadlocks)."""
        rows = self._conn.execute(_VIEW_SQL, [sorted(set(device_ids))]).fetchall()
        return {row[0]: DeviceView(*row) for row in rows}  # columns in the view's order

    def open_alarms(self, device_ids: Iterable[int]) -> set[tuple[int, str, int]]:
        """(device_id, alarm_type, output_type or 0) of every open alarm of these devices."""
        rows = self._conn.execute(
            "SELECT device_id, alarm_type::text, COALESCE(output_type, 0) FROM alarm_events "
            "WHERE resolved_at IS NULL AND device_id = ANY(%s)",
            [sorted(set(device_ids))],
        ).fetchall()
        return {(d, t, o) for d, t, o in rows}

    def alarm_digests(self, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Digests of already accepted (device_id, sequence) pairs."""
        pairs = sorted(set(keys))
        if not pairs:
            return {}
        rows = self._conn.execute(
            "SELECT s.device_id, s.sequence, s.digest FROM alarm_sequences s "
            "JOIN unnest(%s::int[], %s::bigint[]) AS k(device_id, sequence) "
            "USING (device_id, sequence)",
            [[d for d, _ in pairs], [q for _, q in pairs]],
        ).fetchall()
        return {(d, q): bytes(digest) for d, q, digest in rows}

    def update_devices(self, changes: Mapping[int, Mapping[str, object]]) -> None:
        """Apply changed static fields (location, hostname) to devices."""
        _patch(self._conn, schema.devices, "id", changes)

    def patch_status(self, patches: Mapping[int, Mapping[str, object]]) -> None:
        """Apply per-device column patches to device_status, one statement per column set."""
        _patch(self._conn, schema.device_status, "device_id", patches)

    def apply_alarm_changes(self, changes: Sequence[AlarmChange]) -> None:
        """Insert, update and resolve alarm events in message order."""
        for change in changes:
            statement = _ALARM_SQL[change.action]
            self._conn.execute(statement, _alarm_params(change))

    def record_alarm_sequences(self, rows: Sequence[tuple[int, int, bytes, datetime]]) -> None:
        """Remember accepted (device_id, sequence, digest, received_at)."""
        if rows:
            self._conn.execute(
                "INSERT INTO alarm_sequences (device_id, sequence, digest, received_at) "
                "SELECT * FROM unnest(%s::int[], %s::bigint[], %s::bytea[], %s::timestamptz[]) "
                "ON CONFLICT DO NOTHING",
                [list(col) for col in zip(*rows, strict=True)],
            )

    def insert_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Keep rejected messages whole; a redelivered one only if the same message (topic
        and payload) was not dead-lettered within the day before (its first delivery)."""
        if letters:
            self._conn.execute(
                "INSERT INTO dead_letters (topic, payload, reason, detail, received_at) "
                "SELECT t, p, r, d, at FROM unnest(%s::text[], %s::bytea[], %s::varchar[], "
                "%s::text[], %s::timestamptz[], %s::bool[]) AS x(t, p, r, d, at, again) "
                "WHERE NOT (again AND EXISTS (SELECT 1 FROM dead_letters l WHERE l.topic = x.t "
                "AND l.payload = x.p AND l.received_at > x.at - interval '1 day'))",
                [
                    [x.topic for x in letters],
                    [x.payload for x in letters],
                    [x.reason for x in letters],
                    [x.detail for x in letters],
                    [x.received_at for x in letters],
                    [x.redelivered for x in letters],
                ],
            )

    def taken_message_ids(self, pairs: Iterable[tuple[int, str]]) -> set[tuple[int, str]]:
        """Of (device id, message id) pairs, those already taken."""
        wanted = sorted(set(pairs))
        if not wanted:
            return set()
        rows = self._conn.execute(
            "SELECT m.device_id, m.message_id FROM device_message_ids m "
            "JOIN unnest(%s::int[], %s::text[]) AS w(device_id, message_id) "
            "USING (device_id, message_id)",
            [[d for d, _ in wanted], [m for _, m in wanted]],
        ).fetchall()
        return {(int(d), str(m)) for d, m in rows}

    def record_message_ids(self, taken: Sequence[tuple[int, str, datetime]]) -> None:
        """Remember the ids of messages taken in this batch."""
        if taken:
            self._conn.execute(
                "INSERT INTO device_message_ids (device_id, message_id, received_at) "
                "SELECT * FROM unnest(%s::int[], %s::text[], %s::timestamptz[]) "
                "ON CONFLICT DO NOTHING",
                [[t[0] for t in taken], [t[1] for t in taken], [t[2] for t in taken]],
            )

    def insert_snapshots(self, snapshots: Sequence[tuple[int, str, str, datetime]]) -> None:
        """Keep the devices' state snapshots (device id, device type, JSON state, time)."""
        if snapshots:
            self._conn.execute(
                "INSERT INTO device_state_snapshots (device_id, device_type, state_data, "
                "timestamp) SELECT * FROM unnest(%s::int[], %s::text[], %s::jsonb[], "
                "%s::timestamptz[])",
                [[row[column] for row in snapshots] for column in range(4)],
            )

    def log_connections(self, changes: Sequence[ConnectionChange]) -> None:
        """Append connected/disconnected/timeout events."""
        if changes:
            self._conn.execute(
                "INSERT INTO device_connection_log (device_id, event, timestamp, details) "
                "SELECT * FROM unnest(%s::int[], %s::connection_event_enum[], "
                "%s::timestamptz[], %s::jsonb[])",
                [
                    [c.device_id for c in changes],
                    [c.event for c in changes],
                    [c.timestamp for c in changes],
                    [c.details for c in changes],
                ],
            )

    def save_cdc_states(self, rows: Sequence[CdcRow]) -> None:
        """Persist the CDC references that changed in this batch."""
        if not rows:
            return
        names = [c.name for c in schema.heartbeat_cdc_state.c if c.name != "updated_at"]
        columns = [schema.heartbeat_cdc_state.c[n] for n in names]
        query = sql.SQL(
            "INSERT INTO heartbeat_cdc_state ({cols}) SELECT * FROM unnest({arrays}) "
            "ON CONFLICT (device_id) DO UPDATE SET {sets}"
        ).format(
            cols=sql.SQL(", ").join(map(sql.Identifier, names)),
            arrays=sql.SQL(", ").join(
                sql.SQL("%b::{}[]").format(sql.SQL(sql_type(c))) for c in columns
            ),
            sets=sql.SQL(", ").join(
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n))
                for n in names
                if n != "device_id"
            ),
        )
        self._conn.execute(query, [[getattr(r, n) for r in rows] for n in names])

    def add_heartbeat_counts(self, counts: Mapping[tuple[int, datetime], tuple[int, int]]) -> None:
        """Add (received, written) to each (device_id, hour)."""
        if not counts:
            return
        keys = sorted(counts)
        self._conn.execute(
            "INSERT INTO heartbeat_counts AS h (device_id, hour, received, written) "
            "SELECT * FROM unnest(%b::int[], %b::timestamptz[], %b::int[], %b::int[]) "
            "ON CONFLICT (device_id, hour) DO UPDATE "
            "SET received = h.received + EXCLUDED.received, written = h.written + EXCLUDED.written",
            [
                [k[0] for k in keys],
                [k[1] for k in keys],
                [counts[k][0] for k in keys],
                [counts[k][1] for k in keys],
            ],
        )

    def commands(self, request_ids: Iterable[str]) -> dict[str, commands_store.CommandRow]:
        """Commands answered in this batch, locked."""
        return commands_store.by_request_ids(self._conn, request_ids, lock=True)

    def update_commands(self, changes: Mapping[int, Mapping[str, object]]) -> None:
        """Apply response-driven changes to commands."""
        for command_id, change in changes.items():
            commands_store.update(self._conn, command_id, change)

    def create_commands(
        self, commands: Sequence[commands_store.NewCommand], now: datetime
    ) -> list[commands_store.CommandRow]:
        """Queue commands (device-id sync) for the dispatcher."""
        return commands_store.create(self._conn, commands, now)

    def devices_syncing(self, device_ids: Iterable[int]) -> set[int]:
        """Devices with a SET_DEVICE_ID command in flight."""
        return commands_store.open_sync_commands(self._conn, device_ids)

    def silent_devices(
        self,
        cutoff: datetime,
        limit: int,
        transports: Sequence[str] | None = None,
        share: Share | None = None,
    ) -> list[int]:
        """Online devices not heard from since ``cutoff`` (of ``transports``, or all; of a
        worker's ``share``, or all), locked."""
        wanted = None if transports is None else list(transports)
        query = sql.SQL(
            "SELECT s.device_id FROM device_status s JOIN devices d ON d.id = s.device_id "
            "WHERE s.is_online AND s.last_seen < %s "
            "AND (%s::text[] IS NULL OR d.transport = ANY(%s::text[])) AND {} "
            "ORDER BY s.device_id LIMIT %s FOR UPDATE OF s SKIP LOCKED"
        ).format(share_filter("d.hostname", share))
        rows = self._conn.execute(query, [cutoff, wanted, wanted, limit]).fetchall()
        return [row[0] for row in rows]

    def enqueue_points(self, lines: Sequence[str]) -> list[int]:
        """Put line-protocol points in the outbox; their ids, for deleting once written."""
        if not lines:
            return []
        rows = self._conn.execute(
            "INSERT INTO influx_outbox (line) SELECT unnest(%s::text[]) RETURNING id",
            [list(lines)],
        ).fetchall()
        return [row[0] for row in rows]


_JOB_SQL = """
INSERT INTO jobs AS j (device_id, robot_id, job_key, start_time, end_time, items_total,
                      items_done, percent_complete, last_item, status, last_report_at,
                      failure_reason)
VALUES (%(device_id)s, %(robot_id)s, %(job_key)s, %(at)s,
        CASE WHEN %(status)s <> 'active' THEN %(at)s::timestamptz END,
        %(total)s, %(done)s,
        CASE WHEN %(total)s::int > 0 THEN LEAST(100.0, 100.0 * %(done)s / %(total)s::int)
             ELSE 0.0 END,
        %(last)s, %(status)s, %(at)s, %(reason)s)
ON CONFLICT (device_id, job_key) DO UPDATE SET
    items_total = coalesce(EXCLUDED.items_total, j.items_total),
    items_done = GREATEST(j.items_done, EXCLUDED.items_done),
    percent_complete = CASE
        WHEN coalesce(EXCLUDED.items_total, j.items_total) > 0
        THEN LEAST(100.0, 100.0 * GREATEST(j.items_done, EXCLUDED.items_done)
                          / coalesce(EXCLUDED.items_total, j.items_total))
        ELSE j.percent_complete END,
    last_item = CASE WHEN EXCLUDED.items_done >= j.items_done
                     THEN coalesce(EXCLUDED.last_item, j.last_item) ELSE j.last_item END,
    status = EXCLUDED.status,
    end_time = EXCLUDED.end_time,
    failure_reason = EXCLUDED.failure_reason,
    last_report_at = GREATEST(j.last_report_at, EXCLUDED.last_report_at)
WHERE j.status = 'active'
"""


def _patch(
    conn: psycopg.Connection[Any],
    table: Table,
    key: str,
    patches: Mapping[int, Mapping[str, object]],
) -> None:
    """UPDATE rows of ``table`` from per-row dicts, grouped so each column set is one query."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for row_id, patch in patches.items():
        if patch:
            groups.setdefault(tuple(sorted(patch)), []).append(row_id)
    for names, ids in groups.items():
        arrays = [ids] + [[patches[i][n] for i in ids] for n in names]
        query = sql.SQL(
            "UPDATE {table} AS t SET {sets} FROM unnest({arrays}) AS v({cols}) "
            "WHERE t.{key} = v.{key}"
        ).format(
            table=sql.Identifier(table.name),
            sets=sql.SQL(", ").join(
                sql.SQL("{0} = v.{0}").format(sql.Identifier(n)) for n in names
            ),
            arrays=sql.SQL(", ").join(
                sql.SQL("%b::{}[]").format(sql.SQL(sql_type(table.c[n]))) for n in (key, *names)
            ),
            cols=sql.SQL(", ").join(map(sql.Identifier, (key, *names))),
            key=sql.Identifier(key),
        )
        conn.execute(query, arrays)


_ALARM_COLUMNS = (
    "device_id, alarm_type, output_type, sequence, timestamp, device_timestamp, event_state, "
    "priority, physical_state, pattern_type, duration_seconds, elapsed_seconds, metadata"
)
_ALARM_VALUES = (
    "%(device_id)s, %(alarm_type)s, %(output_type)s, %(sequence)s, %(timestamp)s, "
    "%(device_timestamp)s, %(event_state)s, %(priority)s, %(physical_state)s, %(pattern_type)s, "
    "%(duration_seconds)s, %(elapsed_seconds)s, %(metadata)s::jsonb"
)
_OPEN_MATCH = (
    "device_id = %(device_id)s AND alarm_type = %(alarm_type)s "
    "AND COALESCE(output_type, 0) = COALESCE(%(output_type)s, 0) AND resolved_at IS NULL"
)
_ALARM_SQL: dict[str, str] = {
    # The partial unique index is the arbiter: a second "open" of the same kind updates the
    # open event instead of inserting, even if two ingest processes race.
    "open": (
        f"INSERT INTO alarm_events ({_ALARM_COLUMNS}) VALUES ({_ALARM_VALUES}) "  # noqa: S608
        "ON CONFLICT (device_id, alarm_type, COALESCE(output_type, 0)) "
        "WHERE resolved_at IS NULL DO UPDATE SET event_state = EXCLUDED.event_state, "
        "pattern_type = EXCLUDED.pattern_type, duration_seconds = EXCLUDED.duration_seconds, "
        "elapsed_seconds = EXCLUDED.elapsed_seconds"
    ),
    "update": (
        "UPDATE alarm_events SET event_state = %(event_state)s, "  # noqa: S608
        "elapsed_seconds = %(elapsed_seconds)s WHERE " + _OPEN_MATCH
    ),
    "resolve": (
        "UPDATE alarm_events SET event_state = %(event_state)s, resolved_at = %(timestamp)s, "  # noqa: S608
        "elapsed_seconds = COALESCE(NULLIF(%(elapsed_seconds)s, 0), "
        "EXTRACT(EPOCH FROM %(timestamp)s - timestamp)::int) WHERE " + _OPEN_MATCH
    ),
    "record": (
        f"INSERT INTO alarm_events ({_ALARM_COLUMNS}, resolved_at) "  # noqa: S608
        f"VALUES ({_ALARM_VALUES}, %(timestamp)s)"
    ),
}


def _alarm_params(change: AlarmChange) -> dict[str, object]:
    return {
        name: getattr(change, name)
        for name in (
            "device_id",
            "alarm_type",
            "output_type",
            "sequence",
            "timestamp",
            "device_timestamp",
            "event_state",
            "priority",
            "physical_state",
            "pattern_type",
            "duration_seconds",
            "elapsed_seconds",
            "metadata",
        )
    }


class IngestStore:
    """One PostgreSQL connection used by ingest, one batch transaction at a time."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._conn: psycopg.Connection[Any] | None = None
        # The service calls in from several worker threads (batches, outbox drain, sweeps).
        # On one connection a second thread's transaction would become a savepoint inside the
        # first's, committed or rolled back with it: transactions take turns instead.
        self._turn = threading.RLock()

    def sibling(self) -> IngestStore:
        """Another store on the same database, with a connection of its own."""
        return IngestStore(self._conninfo)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(
                    self._conninfo, connect_timeout=5, application_name="fleetwatch-ingest"
                )
            except psycopg.OperationalError as exc:
                raise StoreUnavailableError(f"PostgreSQL unreachable: {exc}") from exc
        return self._conn

    @contextmanager
    def batch(self) -> Iterator[BatchTx]:
        """A transaction for one batch: committed on success, rolled back on any error.

        Connection-level failures surface as StoreUnavailableError (retry later); anything
        else is a bug or a constraint violation and propagates unchanged.
        """
        with self._turn:
            conn = self._connection()
            try:
                with conn.transaction():
                    yield BatchTx(conn)
            except psycopg.OperationalError as exc:
                self.close()
                raise StoreUnavailableError(f"PostgreSQL batch failed: {exc}") from exc

    def load_cdc_states(self, share: Share | None = None) -> list[CdcRow]:
        """Every persisted CDC reference (start-up seeding), or those of a worker's share."""
        names = [c.name for c in schema.heartbeat_cdc_state.c if c.name != "updated_at"]
        # The guard is the newer of the reference's and the status row's (see 0011).
        columns = [
            sql.SQL("GREATEST(c.last_device_ts, s.last_device_ts)")
            if name == "last_device_ts"
            else sql.SQL("c.{}").format(sql.Identifier(name))
            for name in names
        ]
        query = sql.SQL(
            "SELECT {} FROM heartbeat_cdc_state c "
            "LEFT JOIN device_status s ON s.device_id = c.device_id "
            "JOIN devices d ON d.id = c.device_id WHERE {}"
        ).format(sql.SQL(", ").join(columns), share_filter("d.hostname", share))
        with self.batch():
            rows = self._connection().execute(query).fetchall()
        return [CdcRow(*row) for row in rows]

    def load_metric_states(self, share: Share | None = None) -> list[MetricStateRow]:
        """Every persisted CDC reference of devices of declared types (start-up seeding),
        or those of a worker's share."""
        with self.batch():
            rows = (
                self._connection()
                .execute(
                    sql.SQL(
                        "SELECT s.device_id, s.kind, s.written_at, s.values, s.is_online, "
                        "s.last_device_ts, s.stream FROM (SELECT c.device_id, c.written_at, "
                        "c.values, c.is_online, c.stream, CASE WHEN c.stream = '' THEN d.kind "
                        "ELSE d.kind || '_' || split_part(c.stream, '/', 1) END AS kind, "
                        # A device's main history keeps its guard in its status row (see 0011).
                        "CASE WHEN c.stream = '' "
                        "THEN GREATEST(c.last_device_ts, t.last_device_ts) "
                        "ELSE c.last_device_ts END AS last_device_ts "
                        "FROM device_cdc_state c JOIN devices d ON d.id = c.device_id "
                        "LEFT JOIN device_status t ON t.device_id = c.device_id "
                        "WHERE {}) s"
                    ).format(share_filter("d.hostname", share))
                )
                .fetchall()
            )
        return [MetricStateRow(*row) for row in rows]

    def pending_points(self, limit: int) -> list[tuple[int, str]]:
        """The oldest outbox points not yet confirmed by InfluxDB."""
        with self.batch():
            rows = (
                self._connection()
                .execute("SELECT id, line FROM influx_outbox ORDER BY id LIMIT %s", [limit])
                .fetchall()
            )
        return [(row[0], row[1]) for row in rows]

    def delete_points(self, ids: Sequence[int]) -> None:
        """Forget outbox points InfluxDB has confirmed."""
        if ids:
            with self.batch() as _:
                self._connection().execute(
                    "DELETE FROM influx_outbox WHERE id = ANY(%s)", [list(ids)]
                )

    def fail_silent_jobs(self, now: datetime, silence: timedelta) -> int:
        """Fail the active jobs nobody reported on for ``silence`` (see jobs_store)."""
        with self.batch():
            return jobs_store.fail_silent_jobs(self._connection(), now, silence)

    def outbox_size(self) -> int:
        """How many points wait for InfluxDB."""
        with self.batch():
            row = self._connection().execute("SELECT count(*) FROM influx_outbox").fetchone()
        return int(row[0]) if row else 0

    def fleet_gauges(self) -> tuple[int, dict[str, int]]:
        """Devices online, and commands by status (for metrics)."""
        with self.batch():
            conn = self._connection()
            online = conn.execute("SELECT count(*) FROM device_status WHERE is_online").fetchone()
            rows = conn.execute(
                "SELECT status::text, count(*) FROM command_log GROUP BY status"
            ).fetchall()
        return (int(online[0]) if online else 0), {status: int(n) for status, n in rows}

    def ping(self) -> None:
        """Raise StoreUnavailableError unless PostgreSQL answers."""
        with self.batch():
            self._connection().execute("SELECT 1")

    def close(self) -> None:
        """Drop the connection (a new one is made on next use)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except psycopg.Error:
                logger.debug("ignoring error while closing a broken connection")
