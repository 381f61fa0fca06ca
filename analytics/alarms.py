"""Alarm reports: how many alarms, where, how fast they were handled, and the outputs.

Every function reads an *events frame* (:data:`EVENTS_SCHEMA`): rows of ``alarm_events``
with their device's identity, as ``analytics.load.load_alarm_events`` (a period's events)
or ``load_active_alarms`` (the open ones) build it.

An *alarm* here is an input alarm event (PANIC1, PANIC2, TAMPER, FIRE, ..., and UNKNOWN,
fleetwatch's own alerts); OUTPUT_EVENT rows are siren and turret patterns, reported by
:func:`output_activity`; TEST events are deliberate and left out of the response times
and the noisy-device ranking.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final, Literal, TypeAlias, get_args

import polars as pl

from analytics._frames import (
    DEVICE_COLUMNS,
    UTC_TIME,
    count_where,
    quantile,
    require_columns,
    seconds_between,
)
from analytics.selection import AnalyticsError

__all__ = [
    "EVENTS_SCHEMA",
    "OUTPUTS",
    "PRIORITIES",
    "AlarmDimension",
    "active_alarms",
    "alarm_counts",
    "daily_alarms",
    "noisy_devices",
    "output_activity",
    "response_times",
]

EVENTS_SCHEMA: Final = pl.Schema(
    {
        "id": pl.Int64(),
        "device_id": pl.Int64(),
        "hostname": pl.String(),
        "zone": pl.Int64(),
        "country": pl.String(),
        "alarm_type": pl.String(),
        "event_state": pl.String(),
        "priority": pl.String(),
        "output_type": pl.Int64(),
        "pattern_type": pl.Int64(),
        "duration_seconds": pl.Int64(),
        "elapsed_seconds": pl.Int64(),
        "timestamp": UTC_TIME,
        "resolved_at": UTC_TIME,
        "acknowledged_at": UTC_TIME,
    }
)
"""One row per alarm event: ``timestamp`` when it was raised (server time), ``resolved_at``
when it cleared (null while active), ``acknowledged_at`` when an operator acknowledged it."""

PRIORITIES: Final = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
"""Priorities, most urgent first."""
OUTPUTS: Final = {1: "SIREN", 2: "TURRET"}
"""``output_type`` of OUTPUT_EVENT rows."""
OUTPUT_EVENT: Final = "OUTPUT_EVENT"

AlarmDimension: TypeAlias = Literal["alarm_type", "priority", "zone", "country", "device"]
_PERCENT: Final = (0.5, 0.9)


def _checked(events: pl.DataFrame) -> pl.DataFrame:
    require_columns(events, EVENTS_SCHEMA, "alarm events")
    return events


def _keys(by: AlarmDimension | None) -> list[str]:
    if by is None:
        return []
    if by not in get_args(AlarmDimension):
        raise AnalyticsError(f"cannot group alarms by {by!r}")
    return list(DEVICE_COLUMNS) if by == "device" else [by]


def _alarms(events: pl.DataFrame) -> pl.DataFrame:
    """Input alarms: no output patterns, no tests."""
    return _checked(events).filter(
        (pl.col("alarm_type") != OUTPUT_EVENT) & (pl.col("event_state") != "TEST")
    )


def _priority_rank() -> pl.Expr:
    return pl.col("priority").replace_strict(
        {name: rank for rank, name in enumerate(PRIORITIES)},
        default=len(PRIORITIES),
        return_dtype=pl.Int64,
    )


def alarm_counts(events: pl.DataFrame, by: AlarmDimension) -> pl.DataFrame:
    """How many alarm events were raised per type, priority, zone, country or device?

    Every event counts, output patterns and tests included (each is its own
    ``alarm_type``/``event_state``). Columns: the ``by`` column(s) (``device`` gives
    device_id, hostname, zone, country), ``events``, ``active`` (still unresolved), ``first``
    and ``last`` raised; most events first.
    """
    keys = _keys(by)
    return (
        _checked(events)
        .group_by(keys)
        .agg(
            events=pl.len().cast(pl.Int64),
            active=count_where(pl.col("resolved_at").is_null()),
            first=pl.col("timestamp").min(),
            last=pl.col("timestamp").max(),
        )
        .sort(["events", *keys], descending=[True, *([False] * len(keys))], nulls_last=True)
    )


def daily_alarms(
    events: pl.DataFrame,
    *,
    start: datetime,
    end: datetime,
    by: AlarmDimension | None = None,
) -> pl.DataFrame:
    """How many alarm events were raised each day (UTC) of [start, end), optionally per group?

    One row per day (and ``by`` value seen in the events): ``day`` (midnight UTC) and
    ``events``; days without events are there with 0, so the series plots as it happened.
    """
    keys = _keys(by)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    first = start.replace(hour=0, minute=0, second=0, microsecond=0)
    days = pl.DataFrame(
        {
            "day": pl.datetime_range(
                first, end, "1d", closed="left", time_unit="us", time_zone="UTC", eager=True
            )
        }
    )
    counted = (
        _checked(events)
        .filter(
            (pl.col("timestamp") >= pl.lit(start, dtype=UTC_TIME))
            & (pl.col("timestamp") < pl.lit(end, dtype=UTC_TIME))
        )
        .with_columns(day=pl.col("timestamp").dt.truncate("1d"))
        .group_by(["day", *keys])
        .agg(events=pl.len().cast(pl.Int64))
    )
    grid = days.join(counted.select(keys).unique(), how="cross") if keys else days
    return (
        grid.join(counted, on=["day", *keys], how="left", nulls_equal=True)
        .with_columns(pl.col("events").fill_null(0))
        .sort(["day", *keys], nulls_last=True)
    )


def active_alarms(events: pl.DataFrame, *, now: datetime) -> pl.DataFrame:
    """Which alarms are active right now, and for how long?

    Unresolved events (output patterns still running included) with their device,
    ``alarm_type``, ``priority``, ``event_state``, ``output`` (SIREN/TURRET or null),
    ``timestamp``, ``age_seconds`` at ``now`` and whether they were ``acknowledged``; most
    urgent priority first, then the oldest.
    """
    return (
        _checked(events)
        .filter(pl.col("resolved_at").is_null())
        .with_columns(
            output=pl.col("output_type").replace_strict(OUTPUTS, default=None),
            age_seconds=(pl.lit(now, dtype=UTC_TIME) - pl.col("timestamp")).dt.total_microseconds()
            / 1e6,
            acknowledged=pl.col("acknowledged_at").is_not_null(),
            rank=_priority_rank(),
        )
        .sort(["rank", "timestamp", "id"])
        .select(
            "id",
            *DEVICE_COLUMNS,
            "alarm_type",
            "priority",
            "event_state",
            "output",
            "timestamp",
            "age_seconds",
            "acknowledged",
        )
    )


def response_times(events: pl.DataFrame, by: AlarmDimension | None = None) -> pl.DataFrame:
    """How long did alarms take to be acknowledged and to resolve (median, 90th percentile)?

    Input alarms only (no output patterns, no tests), overall or per ``by`` group:
    ``alarms``, ``resolved`` and ``acknowledged`` counts, ``resolve_p50_s``/``resolve_p90_s``
    (seconds from raised to resolved, over the resolved ones) and ``ack_p50_s``/``ack_p90_s``
    (raised to acknowledged); null where none qualifies. Percentiles interpolate linearly.
    """
    keys = _keys(by)
    timed = _alarms(events).with_columns(
        to_resolve=seconds_between("timestamp", "resolved_at"),
        to_ack=seconds_between("timestamp", "acknowledged_at"),
    )
    aggregates = [
        pl.len().cast(pl.Int64).alias("alarms"),
        count_where(pl.col("resolved_at").is_not_null()).alias("resolved"),
        count_where(pl.col("acknowledged_at").is_not_null()).alias("acknowledged"),
    ]
    for column, name in (("to_resolve", "resolve"), ("to_ack", "ack")):
        aggregates += [quantile(column, q).alias(f"{name}_p{round(q * 100)}_s") for q in _PERCENT]
    if not keys:
        return timed.select(aggregates)
    return timed.group_by(keys).agg(aggregates).sort(keys, nulls_last=True)


def noisy_devices(events: pl.DataFrame, *, top: int = 10) -> pl.DataFrame:
    """Which devices raise the most alarms?

    The ``top`` devices by input alarms (no output patterns, no tests): identity,
    ``alarms``, ``critical`` (of them CRITICAL), ``types`` (distinct alarm types) and
    ``last`` raised; ties broken by hostname.
    """
    if top < 1:
        raise AnalyticsError(f"top must be at least 1, got {top}")
    return (
        _alarms(events)
        .group_by(list(DEVICE_COLUMNS))
        .agg(
            alarms=pl.len().cast(pl.Int64),
            critical=count_where(pl.col("priority") == "CRITICAL"),
            types=pl.col("alarm_type").n_unique().cast(pl.Int64),
            last=pl.col("timestamp").max(),
        )
        .sort(["alarms", "hostname"], descending=[True, False])
        .head(top)
    )


def output_activity(
    events: pl.DataFrame, by: Literal["output", "device"] = "output"
) -> pl.DataFrame:
    """How often did sirens and turrets run, and for how long?

    OUTPUT_EVENT rows per ``output`` (SIREN/TURRET), or per device and output:
    ``activations``, ``running`` (not finished yet), and over the finished ones
    ``total_seconds``, ``mean_seconds`` and ``max_seconds``. A finished activation lasted
    its reported ``elapsed_seconds``, or from raised to resolved when the device reported 0.
    """
    if by not in ("output", "device"):
        raise AnalyticsError(f"cannot group output activity by {by!r}")
    keys = ["output"] if by == "output" else [*DEVICE_COLUMNS, "output"]
    ran = (
        _checked(events)
        .filter(pl.col("alarm_type") == OUTPUT_EVENT)
        .with_columns(
            output=pl.col("output_type").replace_strict(OUTPUTS, default=None),
            seconds=pl.when(pl.col("resolved_at").is_null())
            .then(None)
            .when(pl.col("elapsed_seconds") > 0)
            .then(pl.col("elapsed_seconds").cast(pl.Float64))
            .otherwise(seconds_between("timestamp", "resolved_at")),
        )
    )
    return (
        ran.group_by(keys)
        .agg(
            activations=pl.len().cast(pl.Int64),
            running=count_where(pl.col("resolved_at").is_null()),
            total_seconds=pl.col("seconds").sum(),
            mean_seconds=pl.col("seconds").mean(),
            max_seconds=pl.col("seconds").max(),
        )
        .sort(["activations", *keys], descending=[True, *([False] * len(keys))], nulls_last=True)
    )
