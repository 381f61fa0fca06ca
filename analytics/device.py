"""One device: its status as a list of fields, its alarms open and recent, its stored history
as step series.

The input frames come from ``analytics.load``: ``load_device`` (the device's row with every
column of its status), the alarm, command, rule-event, connection-log and dead-letter
loaders filtered to the device, and ``load_device_history`` (the points the CDC stored, one
row per point and a column per field).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import polars as pl

from analytics._frames import UTC_TIME, require_columns
from analytics.alarms import EVENTS_SCHEMA as ALARM_EVENTS_SCHEMA

__all__ = [
    "CONNECTIONS_SCHEMA",
    "DEAD_LETTERS_SCHEMA",
    "INSTANCE_COLUMNS",
    "SERIES_SCHEMA",
    "SNAPSHOTS_SCHEMA",
    "device_alarms",
    "history_series",
    "status_fields",
]

CONNECTIONS_SCHEMA: Final = pl.Schema(
    {
        "id": pl.Int64(),
        "device_id": pl.Int64(),
        "hostname": pl.String(),
        "event": pl.String(),
        "timestamp": UTC_TIME,
        "details": pl.String(),
    }
)
"""Rows of ``device_connection_log``: ``event`` is connected, disconnected or timeout;
``details`` the JSON the ingest recorded with it."""

SNAPSHOTS_SCHEMA: Final = pl.Schema(
    {
        "id": pl.Int64(),
        "device_type": pl.String(),
        "timestamp": UTC_TIME,
        "state_data": pl.String(),
    }
)
"""Rows of ``device_state_snapshots`` (seed 003): the whole state a WebSocket device
reported in a ``status``, as JSON."""

DEAD_LETTERS_SCHEMA: Final = pl.Schema(
    {
        "id": pl.Int64(),
        "received_at": UTC_TIME,
        "topic": pl.String(),
        "reason": pl.String(),
        "detail": pl.String(),
        "payload_bytes": pl.Int64(),
        "payload_start": pl.String(),
    }
)
"""Messages ingest could not use: ``payload_start`` is the payload's first bytes, non-printable
ones escaped (a payload is whatever arrived, often not text)."""

SERIES_SCHEMA: Final = pl.Schema({"time": UTC_TIME, "series": pl.String(), "value": pl.Float64()})
"""A device's stored values in long form: one row per point and field; a flag is 1.0 or 0.0."""

INSTANCE_COLUMNS: Final = ("_measurement", "servo_id", "sensor_type")
"""What tells a device's histories apart when it has several (a robot's parts and their
instances): the measurement and the instance tags of ``ingest.kinds.robot``."""

_NOT_VALUES: Final = frozenset({"device_time_ms"})  # the device's clock, not a reading


def status_fields(device: pl.DataFrame, *, leave_out: Sequence[str] = ()) -> pl.DataFrame:
    """The first row of ``device`` as a two-column list, ``field`` and ``value`` (as text), in
    column order; fields without a value and those in ``leave_out`` are not listed."""
    if device.is_empty():
        return pl.DataFrame(schema={"field": pl.String(), "value": pl.String()})
    row = device.head(1).drop([c for c in leave_out if c in device.columns])
    shown = [name for name in row.columns if row[name][0] is not None]
    return pl.DataFrame(
        {
            "field": shown,
            "value": [str(row[name][0]) for name in shown],
        },
        schema={"field": pl.String(), "value": pl.String()},
    )


def device_alarms(recent: pl.DataFrame, open_events: pl.DataFrame) -> pl.DataFrame:
    """A device's alarm events raised in the period and those still open however old, each
    once, newest first: ``id``, ``alarm_type``, ``priority``, ``event_state``, ``open`` (not
    resolved), ``timestamp``, ``acknowledged_at``, ``resolved_at``, ``output_type`` and
    ``elapsed_seconds``. Both frames are :data:`analytics.alarms.EVENTS_SCHEMA` rows."""
    require_columns(recent, ALARM_EVENTS_SCHEMA, "alarm events")
    require_columns(open_events, ALARM_EVENTS_SCHEMA, "open alarm events")
    return (
        pl.concat([recent, open_events], how="vertical_relaxed")
        .unique("id", keep="first")
        .sort(["timestamp", "id"], descending=True)
        .select(
            "id",
            "alarm_type",
            "priority",
            "event_state",
            pl.col("resolved_at").is_null().alias("open"),
            "timestamp",
            "acknowledged_at",
            "resolved_at",
            "output_type",
            "elapsed_seconds",
        )
    )


def history_series(
    points: pl.DataFrame, *, instance_columns: Sequence[str] = INSTANCE_COLUMNS
) -> pl.DataFrame:
    """A device's stored points (one row per point, ``_time`` and a column per field, as
    ``device_series.flux`` and ``device_metric_series.flux`` give them) as
    :data:`SERIES_SCHEMA` rows, sorted by series and time.

    Every number and flag is a series (texts such as ``device_state`` and ``changes`` are
    not); a series is named by its field, preceded by the ``instance_columns`` whose values
    differ between the device's histories (``servos/servo_1/temperature``). Each value holds
    until the next point of its series: draw them as steps.
    """
    if points.is_empty() or "_time" not in points.columns:
        return pl.DataFrame(schema=SERIES_SCHEMA)
    values = [
        name
        for name, dtype in points.schema.items()
        if (dtype.is_numeric() or dtype == pl.Boolean) and name not in _NOT_VALUES
    ]
    if not values:
        return pl.DataFrame(schema=SERIES_SCHEMA)
    keys = [c for c in instance_columns if c in points.columns and points[c].n_unique() > 1]
    return (
        points.select(
            pl.col("_time").alias("time"),
            *keys,
            *(pl.col(name).cast(pl.Float64) for name in values),
        )
        .unpivot(index=["time", *keys], on=values, variable_name="field", value_name="value")
        .drop_nulls("value")
        .select(
            "time",
            pl.concat_str([*keys, "field"], separator="/", ignore_nulls=True).alias("series"),
            "value",
        )
        .sort(["series", "time"])
        .cast(SERIES_SCHEMA)
    )
