"""The span and window a trend page draws by default, for young and settled histories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analytics import trends
from analytics.load import InfluxBuckets, load_history_start, run_trend, trend_query
from analytics.selection import Period
from dashboards.trend_view import WINDOWS, drawn_period, window_choice
from fleetwatch.settings import InfluxSettings
from stores.influx import make_client
from tests.support.history import heartbeat, tags, write

M = timedelta(minutes=1)
H = timedelta(hours=1)
NOW = datetime(2025, 3, 10, 12, 0, 30, tzinfo=UTC)
DAY = Period(datetime(2025, 3, 9, 12, tzinfo=UTC), datetime(2025, 3, 10, 12, tzinfo=UTC))
DEMO_FLEET = 365  # the demo's 300 panels, 60 telemetry devices and 5 robots


def _default(period: Period, fleet_devices: int | None) -> tuple[str, str]:
    """The source and default window label the Trends page picks for ``period``."""
    source = trends.choose_source(period.start, period.end, fleet_devices=fleet_devices)
    windows = {k: v for k, v in WINDOWS.items() if source == "raw" or not v % H}
    fitting, default = window_choice(period, windows)
    return source, fitting[default]


def test_the_whole_day_holds_a_young_fleet_in_one_point() -> None:
    """Why the chart looked empty: a day of the demo fleet reads the hourly rollup at 1 hour
    windows, so ten minutes of points are one point (and 15 minutes on raw points, too)."""
    assert _default(DAY, DEMO_FLEET) == ("groups", "1 hour")
    assert _default(DAY, 7) == ("raw", "15 minutes")


def test_a_young_history_is_drawn_over_its_span_at_minute_windows() -> None:
    """Ten minutes of history in a day: drawn from its first minute, raw, at 1 minute windows,
    ten points; the same for picked devices."""
    first = DAY.end - 10 * M + timedelta(seconds=20)
    drawn = drawn_period(DAY, first, NOW)
    assert drawn == Period(DAY.end - 10 * M, DAY.end)
    for fleet_devices in (DEMO_FLEET, None):
        assert _default(drawn, fleet_devices) == ("raw", "1 minute")
    assert drawn.length / WINDOWS["1 minute"] == 10


def test_a_settled_or_empty_history_keeps_the_period() -> None:
    """Points from before the period, points older than an hour, or none: the whole period,
    with its usual default."""
    for first in (DAY.start - 5 * M, DAY.start, DAY.end - 2 * H, None):
        assert drawn_period(DAY, first, NOW) == DAY, first
    assert _default(DAY, 7) == ("raw", "15 minutes")


def test_a_running_period_ends_at_the_current_minute() -> None:
    """A period of whole days that ends tomorrow draws a young history up to now's minute."""
    today = Period(datetime(2025, 3, 10, tzinfo=UTC), datetime(2025, 3, 11, tzinfo=UTC))
    drawn = drawn_period(today, NOW - 10 * M, NOW)
    assert drawn == Period(datetime(2025, 3, 10, 11, 50, tzinfo=UTC), NOW.replace(second=0) + M)
    assert _default(drawn, DEMO_FLEET) == ("raw", "1 minute")


def test_ten_minutes_of_points_draw_a_line(influx_settings: InfluxSettings) -> None:
    """Points only ten minutes old, read back through the store over the default day: the
    default span and window give a point per minute, not one."""
    now = datetime.now(UTC)
    day = Period(
        now.replace(second=0, microsecond=0) - 24 * H, now.replace(second=0, microsecond=0)
    )
    bucket = influx_settings.influx_bucket
    buckets = InfluxBuckets(raw=bucket, hourly=bucket)
    with make_client(influx_settings) as client:
        write(client, bucket, (heartbeat(tags(1), now - (10 - k) * M) for k in range(10)))
        first = load_history_start(client, buckets, "temperature", day)
        drawn = drawn_period(day, first, now)
        source, label = _default(drawn, DEMO_FLEET)
        query = trend_query(
            buckets, "temperature", drawn, WINDOWS[label], by=(), fleet_devices=DEMO_FLEET
        )
        trend = run_trend(client, query, ())
    assert (source, label) == ("raw", "1 minute")
    assert trend.height >= 9
    assert trend["value"].to_list() == pytest.approx([21.0] * trend.height)
