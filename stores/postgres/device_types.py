"""Device types and their metrics in PostgreSQL (``device_types``, ``device_type_metrics``).

Rows in, rows out: what a type means (a kind whose metrics drive the CDC) is
``ingest.kinds.telemetry``'s business. A type is written whole, its metrics replaced in one
transaction, so a reader never sees half an edit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from stores.errors import StoreError


class DeviceTypeExistsError(StoreError):
    """A device type of that name exists already."""


class DeviceTypeInUseError(StoreError):
    """The device type still has devices."""


@dataclass(frozen=True, slots=True)
class MetricRow:
    """One ``device_type_metrics`` row."""

    name: str
    unit: str
    value_type: str
    metric_min: float | None
    metric_max: float | None
    dead_band: float | None
    is_event: bool
    description: str | None


@dataclass(frozen=True, slots=True)
class DeviceTypeRow:
    """One ``device_types`` row and its metrics, in their declared order."""

    id: UUID | None
    name: str
    description: str | None
    auto_register: bool
    metrics: tuple[MetricRow, ...]


def _float(value: Decimal | float | None) -> float | None:
    return None if value is None else float(value)


def load(
    conn: psycopg.Connection[Any], *, ids: Iterable[UUID] | None = None
) -> list[DeviceTypeRow]:
    """Every device type (or those of ``ids``), by name."""
    wanted = None if ids is None else sorted(set(ids))
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT t.id, t.name, t.description, t.auto_register, m.name AS metric, m.unit, "
            "m.value_type, m.metric_min, m.metric_max, m.dead_band, m.is_event, "
            "m.description AS metric_description "
            "FROM device_types t LEFT JOIN device_type_metrics m ON m.device_type_id = t.id "
            "WHERE %(ids)s::uuid[] IS NULL OR t.id = ANY(%(ids)s::uuid[]) "
            "ORDER BY t.name, m.position",
            {"ids": wanted},
        )
        rows = cur.fetchall()
    types: dict[UUID, DeviceTypeRow] = {}
    for row in rows:
        known = types.get(row["id"])
        metrics = known.metrics if known else ()
        if row["metric"] is not None:
            metrics = (
                *metrics,
                MetricRow(
                    name=row["metric"],
                    unit=row["unit"],
                    value_type=row["value_type"],
                    metric_min=_float(row["metric_min"]),
                    metric_max=_float(row["metric_max"]),
                    dead_band=row["dead_band"],
                    is_event=row["is_event"],
                    description=row["metric_description"],
                ),
            )
        types[row["id"]] = DeviceTypeRow(
            id=row["id"],
            name=row["name"],
            description=row["description"],
            auto_register=row["auto_register"],
            metrics=metrics,
        )
    return list(types.values())


def find(conn: psycopg.Connection[Any], name: str) -> DeviceTypeRow | None:
    """The device type called ``name``, if any."""
    row = conn.execute("SELECT id FROM device_types WHERE name = %s", [name]).fetchone()
    if row is None:
        return None
    (found,) = load(conn, ids=[row[0]])
    return found


def by_name(conn: psycopg.Connection[Any], names: Iterable[str]) -> dict[str, DeviceTypeRow]:
    """The device types among ``names``, by name."""
    rows = conn.execute(
        "SELECT id FROM device_types WHERE name = ANY(%s)", [sorted(set(names))]
    ).fetchall()
    return {t.name: t for t in load(conn, ids=[r[0] for r in rows])} if rows else {}


def create(conn: psycopg.Connection[Any], device_type: DeviceTypeRow) -> UUID:
    """Store a new device type with its metrics; DeviceTypeExistsError if the name is taken."""
    try:
        with conn.transaction():
            row = conn.execute(
                "INSERT INTO device_types (name, description, auto_register) VALUES (%s, %s, %s) "
                "RETURNING id",
                [device_type.name, device_type.description, device_type.auto_register],
            ).fetchone()
            if row is None:
                raise StoreError("INSERT into device_types returned no id")
            _write_metrics(conn, row[0], device_type.metrics)
    except psycopg.errors.UniqueViolation as exc:
        raise DeviceTypeExistsError(f"a device type {device_type.name!r} exists already") from exc
    return UUID(str(row[0]))


def replace(conn: psycopg.Connection[Any], name: str, device_type: DeviceTypeRow) -> bool:
    """Overwrite the type called ``name`` (it may be renamed); False if there is none."""
    with conn.transaction():
        row = conn.execute(
            "UPDATE device_types SET name = %s, description = %s, auto_register = %s "
            "WHERE name = %s RETURNING id",
            [device_type.name, device_type.description, device_type.auto_register, name],
        ).fetchone()
        if row is None:
            return False
        conn.execute("DELETE FROM device_type_metrics WHERE device_type_id = %s", [row[0]])
        _write_metrics(conn, row[0], device_type.metrics)
    return True


def delete(conn: psycopg.Connection[Any], name: str) -> bool:
    """Remove an unused device type; DeviceTypeInUseError while devices have it."""
    try:
        with conn.transaction():
            done = conn.execute("DELETE FROM device_types WHERE name = %s", [name]).rowcount
    except psycopg.errors.ForeignKeyViolation as exc:
        raise DeviceTypeInUseError(f"device type {name!r} still has devices") from exc
    return bool(done)


def _write_metrics(
    conn: psycopg.Connection[Any], type_id: UUID, metrics: Sequence[MetricRow]
) -> None:
    conn.cursor().executemany(
        "INSERT INTO device_type_metrics (device_type_id, name, position, unit, value_type, "
        "metric_min, metric_max, dead_band, is_event, description) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [
            (
                type_id,
                m.name,
                position,
                m.unit,
                m.value_type,
                m.metric_min,
                m.metric_max,
                m.dead_band,
                m.is_event,
                m.description,
            )
            for position, m in enumerate(metrics)
        ],
    )


class DeviceExistsError(StoreError):
    """A device with that serial number exists already."""


@dataclass(frozen=True, slots=True)
class TypedDevice:
    """A device of a declared type as operators see it (seed 002's fields)."""

    id: int
    serial_number: str
    name: str | None
    device_type: str
    location: str | None
    status: str
    is_online: bool
    last_seen: datetime | None


def add_device(
    conn: psycopg.Connection[Any],
    kind: str,
    serial: str,
    type_id: UUID,
    *,
    name: str | None = None,
    location: str | None = None,
) -> int:
    """Register a device of a declared type, addressed on MQTT by its serial; its id."""
    try:
        with conn.transaction():
            row = conn.execute(
                "INSERT INTO devices (kind, serial_number, hostname, name, device_type_id, "
                "location_desc) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                [kind, serial, serial, name or serial, type_id, location],
            ).fetchone()
            if row is None:
                raise StoreError("INSERT into devices returned no id")
            conn.execute("INSERT INTO device_status (device_id) VALUES (%s)", [row[0]])
    except psycopg.errors.UniqueViolation as exc:
        raise DeviceExistsError(f"a device with serial {serial!r} exists already") from exc
    return int(row[0])


def typed_devices(conn: psycopg.Connection[Any], type_name: str | None = None) -> list[TypedDevice]:
    """Devices of declared types (of one type, if named), by serial."""
    rows = conn.execute(
        "SELECT d.id, d.serial_number, d.name, t.name, d.location_desc, d.status, "
        "s.is_online, s.last_seen FROM devices d JOIN device_types t ON t.id = d.device_type_id "
        "JOIN device_status s ON s.device_id = d.id "
        "WHERE %(type)s::text IS NULL OR t.name = %(type)s ORDER BY d.serial_number",
        {"type": type_name},
    ).fetchall()
    return [TypedDevice(*row) for row in rows]
