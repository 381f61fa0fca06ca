"""Where a selection's stored history starts, read from a real InfluxDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from influxdb_client.client.influxdb_client import InfluxDBClient

from analytics.load import InfluxBuckets, load_history_start
from analytics.selection import Period, ReportFilter
from fleetwatch.settings import InfluxSettings
from tests.support.history import heartbeat, tags, write

T = datetime(2024, 6, 1, 12, tzinfo=UTC)
M = timedelta(minutes=1)
A, B = tags(1), tags(2, zone=5, country="PT")


@pytest.fixture
def buckets(influx_client: InfluxDBClient, influx_settings: InfluxSettings) -> InfluxBuckets:
    """The test's bucket holding device A's points each minute from T to T+9 min and one
    point of device B five minutes before T."""
    raw = influx_settings.influx_bucket
    write(influx_client, raw, (heartbeat(A, T + k * M) for k in range(10)))
    write(influx_client, raw, [heartbeat(B, T - 5 * M)])
    return InfluxBuckets(raw=raw, hourly=raw)


def test_history_start_is_the_earliest_point_of_the_selection(
    influx_client: InfluxDBClient, buckets: InfluxBuckets
) -> None:
    """The first point counts from the trend's carry before the period on, per filter."""
    hour = Period(T, T + 60 * M)
    start = load_history_start(influx_client, buckets, "temperature", hour)
    assert start == T - 5 * M  # B's point, in force when the period opens
    spain = ReportFilter(country="ES")
    assert load_history_start(influx_client, buckets, "temperature", hour, spain) == T
    only_a = ReportFilter(hostnames=(A.hostname,))
    later = Period(T + 3 * M, T + 60 * M)
    assert load_history_start(influx_client, buckets, "temperature", later, only_a) == T
    nobody = ReportFilter(zone=9)
    assert load_history_start(influx_client, buckets, "temperature", hour, nobody) is None
    after = Period(T + 20 * M, T + 60 * M)  # A's last point is more than the carry before
    assert load_history_start(influx_client, buckets, "temperature", after) is None
