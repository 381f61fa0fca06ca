"""Sensor trends: the time-weighted mean of a CDC-thinned series, per window.

The heartbeat history keeps a point only when a value moved past its dead band (or every
five minutes), so the stored series is a step function: each value holds until the next
point, and it stays within the CDC threshold of every heartbeat received. A trend must read
it that way: carry the value in force into each window, even through windows without a
point, and weight each value by how long it held. A plain mean of the points is biased
towards the moments the CDC chose to write (a burst of changes outweighs a quiet hour).

:func:`time_weighted` is that computation in Polars, the reference the Flux queries
(``stores/influx/flux/sensor_trend.flux``) are tested against; :func:`combine` merges
devices into a group; :func:`choose_source` picks the raw bucket, the per-device hourly
downsample or the per-zone hourly rollup.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, TypeAlias

import polars as pl

from analytics._frames import UTC_TIME
from analytics.selection import AnalyticsError

__all__ = [
    "HOURLY_AFTER",
    "RAW_DEVICE_HOURS",
    "TREND_SCHEMA",
    "TrendSource",
    "align",
    "choose_source",
    "combine",
    "time_weighted",
]

HOURLY_AFTER: Final = timedelta(days=2)
"""Periods longer than this read the hourly downsample instead of the raw points (measured:
10 picked devices over 7 raw days take 3.3 s in Flux, over 30 hourly days 0.5 s)."""

RAW_DEVICE_HOURS: Final = 500
"""A selection of a whole fleet, zone or country (no devices picked) reads per-device data
only up to this many device-hours (300 devices over 1.5 hours); beyond, the per-zone hourly
rollup, whose size does not grow with the fleet (200 devices over 24 raw hours: 7.5 s)."""

TREND_SCHEMA: Final = pl.Schema(
    {"time": UTC_TIME, "value": pl.Float64(), "covered_seconds": pl.Float64()}
)
"""The columns of a trend, besides its group columns: ``time`` (window start), ``value``
(time-weighted mean) and ``covered_seconds`` (live time behind it)."""

TrendSource: TypeAlias = Literal["raw", "hourly", "groups"]
"""``raw`` CDC points, the ``hourly`` per-device downsample, the per-zone hourly ``groups``."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_HOUR: Final = timedelta(hours=1)


def choose_source(
    start: datetime,
    stop: datetime,
    *,
    fleet_devices: int | None = None,
    hourly_after: timedelta = HOURLY_AFTER,
) -> TrendSource:
    """Which data should a trend over [start, stop) read?

    ``fleet_devices`` is how many devices a selection without picked devices covers (None
    when devices are picked): past :data:`RAW_DEVICE_HOURS` device-hours it reads the
    per-zone rollup (``groups``). Otherwise ``raw`` points for periods up to
    ``hourly_after``, the per-device ``hourly`` downsample beyond.
    """
    if stop <= start:
        raise AnalyticsError(f"empty range: {start.isoformat()} to {stop.isoformat()}")
    if fleet_devices is not None and fleet_devices * ((stop - start) / _HOUR) > RAW_DEVICE_HOURS:
        return "groups"
    return "hourly" if stop - start > hourly_after else "raw"


def align(moment: datetime, every: timedelta) -> datetime:
    """``moment`` rounded down to a multiple of ``every`` since the Unix epoch (UTC): where
    InfluxDB's windows start, so that Python and Flux windows coincide."""
    _require_every(every)
    return moment - (moment - _EPOCH) % every


def time_weighted(
    points: pl.DataFrame,
    *,
    start: datetime,
    stop: datetime,
    every: timedelta,
    by: Sequence[str] = ("device_id",),
) -> pl.DataFrame:
    """What was the time-weighted mean of a step-function series in each window?

    ``points`` has ``time`` (UTC datetime), ``value`` (number), optionally ``live`` (bool;
    false marks a device offline) and the ``by`` columns naming a series. Windows are
    [start + k * every, ...), the last one cut at ``stop``. Each point's value holds until
    the series' next point; the last value before ``start`` (or before a window without
    points) is carried in; time after a point with ``live`` false counts for nothing.

    Returns one row per series and window that had live time: the ``by`` columns, ``time``
    (window start), ``value`` and ``covered_seconds``, sorted by series and time.
    """
    _require_every(every)
    if stop <= start:
        raise AnalyticsError(f"empty range: {start.isoformat()} to {stop.isoformat()}")
    keys = list(by)
    missing = [c for c in (*keys, "time", "value") if c not in points.columns]
    if missing:
        raise AnalyticsError(f"points frame lacks columns {missing}")
    live = pl.col("live").fill_null(value=True) if "live" in points.columns else pl.lit(value=True)
    live = live.cast(pl.Boolean).alias("live")
    series = (
        points.select(*keys, pl.col("time").cast(UTC_TIME), pl.col("value").cast(pl.Float64), live)
        .filter(pl.col("value").is_not_null())
        .sort("time")
    )
    first, last = pl.lit(start, dtype=UTC_TIME), pl.lit(stop, dtype=UTC_TIME)
    boundaries = [start]
    boundary = align(start, every) + every
    while boundary < stop:
        boundaries.append(boundary)
        boundary += every
    windows = pl.DataFrame({"window": boundaries}, schema={"window": UTC_TIME})
    grid = series.select(keys).unique().join(windows, how="cross") if keys else windows
    # The value in force as each window opens: the series' last point at or before it.
    carried = (
        grid.sort("window")
        .join_asof(
            series,
            left_on="window",
            right_on="time",
            by=keys or None,
            strategy="backward",
            check_sortedness=False,  # both sorted on time above; Polars cannot tell per group
        )
        .filter(pl.col("time").is_not_null())
        .select(*keys, pl.col("window").alias("time"), "value", "live", "window", src=pl.lit(0))
    )
    inside = series.filter((pl.col("time") >= first) & (pl.col("time") < last)).with_columns(
        window=pl.max_horizontal(_aligned(pl.col("time"), every), first), src=pl.lit(1)
    )
    steps = pl.concat([carried, inside.select(carried.columns)]).sort(
        [*keys, "window", "time", "src"]
    )
    # Each row holds until the next row of its series and window, or the window's end.
    end = pl.min_horizontal(_aligned(pl.col("window"), every) + every, last)
    held = pl.col("time").shift(-1).over([*keys, "window"]).fill_null(end) - pl.col("time")
    weighted = steps.with_columns(
        weight=pl.when(pl.col("live")).then(held.dt.total_microseconds() / 1e6).otherwise(0.0)
    )
    return (
        weighted.group_by([*keys, "window"])
        .agg(
            weighted=(pl.col("value") * pl.col("weight")).sum(),
            covered_seconds=pl.col("weight").sum(),
        )
        .filter(pl.col("covered_seconds") > 0)
        .select(
            *keys,
            pl.col("window").alias("time"),
            (pl.col("weighted") / pl.col("covered_seconds")).alias("value"),
            "covered_seconds",
        )
        .sort([*keys, "time"])
    )


def combine(trend: pl.DataFrame, by: Sequence[str] = ()) -> pl.DataFrame:
    """What was the group's mean in each window, given each device's time-weighted mean?

    ``trend`` has ``time``, ``value`` and ``covered_seconds`` per device (as
    :func:`time_weighted` or the trend loaders return). Returns, per ``by`` group and
    ``time``: ``value`` weighted by each device's covered time (the mean over all
    device-seconds), ``covered_seconds`` and ``devices`` (rows combined).
    """
    keys = [*by, "time"]
    missing = [c for c in (*keys, "value", "covered_seconds") if c not in trend.columns]
    if missing:
        raise AnalyticsError(f"trend frame lacks columns {missing}")
    return (
        trend.group_by(keys)
        .agg(
            weighted=(pl.col("value") * pl.col("covered_seconds")).sum(),
            covered_seconds=pl.col("covered_seconds").sum(),
            devices=pl.len().cast(pl.Int64),
        )
        .filter(pl.col("covered_seconds") > 0)
        .select(
            *keys,
            (pl.col("weighted") / pl.col("covered_seconds")).alias("value"),
            "covered_seconds",
            "devices",
        )
        .sort(keys)
    )


def _aligned(moment: pl.Expr, every: timedelta) -> pl.Expr:
    """Like :func:`align`, on a column."""
    step = every // timedelta(microseconds=1)
    since_epoch = (moment - pl.lit(_EPOCH, dtype=UTC_TIME)).dt.total_microseconds()
    return pl.lit(_EPOCH, dtype=UTC_TIME) + pl.duration(microseconds=since_epoch // step * step)


def _require_every(every: timedelta) -> None:
    if every <= timedelta(0):
        raise AnalyticsError(f"window must be positive, got {every}")
