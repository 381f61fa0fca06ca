"""Time-weighted trends on hand-built point series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from analytics.selection import AnalyticsError
from analytics.trends import RAW_DEVICE_HOURS, align, choose_source, combine, time_weighted

T = datetime(2024, 1, 1, tzinfo=UTC)
S = timedelta(seconds=1)
M = timedelta(minutes=1)


def points(*rows: tuple[int, float, float, bool]) -> pl.DataFrame:
    """Points as (device_id, seconds after T, value, live)."""
    return pl.DataFrame(
        [(device, T + seconds * S, value, live) for device, seconds, value, live in rows],
        schema={
            "device_id": pl.Int64,
            "time": pl.Datetime("us", "UTC"),
            "value": pl.Float64,
            "live": pl.Boolean,
        },
        orient="row",
    )


# Device 1: 10 from before the period, 20 from 00:00:30, 30 from 00:05:00.
# Device 2: 0 from before, offline at 00:01:30, back with 4 at 00:04:30.
SERIES = points(
    (1, -60, 10.0, True),
    (1, 30, 20.0, True),
    (1, 300, 30.0, True),
    (2, -200, 0.0, True),
    (2, 90, 0.0, False),
    (2, 270, 4.0, True),
)


def test_values_hold_and_are_carried_into_windows() -> None:
    """The first minute is half 10, half 20; minutes without points keep the last value."""
    trend = time_weighted(SERIES.filter(device_id=1), start=T, stop=T + 10 * M, every=M)
    assert trend.select("value").to_series().to_list() == [15.0] + [20.0] * 4 + [30.0] * 5
    assert set(trend["covered_seconds"].to_list()) == {60.0}


def test_offline_time_counts_for_nothing() -> None:
    """Device 2 covers only its live seconds; minutes wholly offline have no row."""
    trend = time_weighted(SERIES.filter(device_id=2), start=T, stop=T + 6 * M, every=M)
    assert trend.select("time", "value", "covered_seconds").rows() == [
        (T, 0.0, 60.0),
        (T + M, 0.0, 30.0),
        (T + 4 * M, 4.0, 30.0),
        (T + 5 * M, 4.0, 60.0),
    ]


def test_windows_are_epoch_aligned_like_influxdb() -> None:
    """A start off the grid makes a short first window; the next ones are on whole minutes."""
    trend = time_weighted(SERIES.filter(device_id=1), start=T + 30 * S, stop=T + 3 * M, every=M)
    assert trend.select("time", "value", "covered_seconds").rows() == [
        (T + 30 * S, 20.0, 30.0),
        (T + M, 20.0, 60.0),
        (T + 2 * M, 20.0, 60.0),
    ]
    assert align(T + 90 * S, M) == T + M
    assert align(T + 90 * S, timedelta(hours=1)) == T


def test_a_point_on_a_boundary_replaces_the_carried_value() -> None:
    """The point stamped 00:05:00 holds for the whole sixth minute."""
    trend = time_weighted(SERIES.filter(device_id=1), start=T + 5 * M, stop=T + 6 * M, every=M)
    assert trend.select("value").item() == 30.0


def test_a_plain_mean_would_be_biased() -> None:
    """A burst of points does not outweigh a long quiet stretch."""
    burst = points(*[(1, s, 100.0, True) for s in range(10)], (1, 10, 0.0, True))
    trend = time_weighted(burst, start=T, stop=T + 100 * S, every=100 * S)
    assert trend.select("value").item() == pytest.approx(10.0)  # 100 for 10 s, 0 for 90 s
    assert burst["value"].mean() == pytest.approx(1000 / 11)


def test_without_live_column_every_point_is_live() -> None:
    """A series without 'live' is read as always online; no groups gives one series."""
    trend = time_weighted(
        SERIES.filter(device_id=1).drop("live", "device_id"),
        start=T,
        stop=T + 2 * M,
        every=M,
        by=(),
    )
    assert trend.select("value").to_series().to_list() == [15.0, 20.0]


def test_combine_weights_devices_by_covered_time() -> None:
    """A group's mean is over device-seconds: a half-covered device counts half."""
    trend = time_weighted(SERIES, start=T, stop=T + 2 * M, every=M)
    group = combine(trend)
    assert group.select("time", "value", "covered_seconds", "devices").rows() == [
        (T, pytest.approx((15 * 60 + 0 * 60) / 120), 120.0, 2),
        (T + M, pytest.approx((20 * 60 + 0 * 30) / 90), 90.0, 2),
    ]


def test_source_is_raw_for_two_days_and_hourly_beyond() -> None:
    """Picked devices: up to two days read raw points, longer periods the hourly downsample."""
    assert choose_source(T, T + timedelta(days=2)) == "raw"
    assert choose_source(T, T + timedelta(days=2, hours=1)) == "hourly"
    assert choose_source(T, T + timedelta(days=2), hourly_after=timedelta(days=1)) == "hourly"
    with pytest.raises(AnalyticsError):
        choose_source(T, T)


def test_whole_fleet_reads_the_zone_rollup_past_the_raw_budget() -> None:
    """A selection without picked devices reads per-device data up to RAW_DEVICE_HOURS
    device-hours, the per-zone rollup beyond, whatever the period."""
    hour = timedelta(hours=1)
    assert choose_source(T, T + hour, fleet_devices=RAW_DEVICE_HOURS) == "raw"
    assert choose_source(T, T + hour, fleet_devices=RAW_DEVICE_HOURS + 1) == "groups"
    assert choose_source(T, T + timedelta(days=1), fleet_devices=300) == "groups"
    assert choose_source(T, T + timedelta(days=3), fleet_devices=3) == "hourly"


def test_bad_arguments_are_refused() -> None:
    """A non-positive window or a frame without time/value is an error."""
    with pytest.raises(AnalyticsError):
        time_weighted(SERIES, start=T, stop=T + M, every=timedelta(0))
    with pytest.raises(AnalyticsError, match="lacks columns"):
        time_weighted(SERIES.drop("value"), start=T, stop=T + M, every=M)
