"""Trends read back from InfluxDB: the CDC-thinned history keeps the time-weighted mean."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from influxdb_client.client.influxdb_client import InfluxDBClient

from analytics.load import ROLLUP_DELAY, InfluxBuckets, load_trend, trend_query
from analytics.selection import AnalyticsError, Period, ReportFilter
from fleetwatch.settings import InfluxSettings
from ingest.cdc import CdcTracker
from ingest.kinds.panel import PANEL
from ingest.kinds.panel import PanelReading as Reading
from stores.influx import ensure_bucket, run_hourly_stats
from stores.influx.buckets import find_bucket
from stores.influx.flux_library import flux_time, run_flux
from tests.conftest import unique_name
from tests.support.history import heartbeat, tags, write

DEVICE = tags(7)
EVERY = timedelta(seconds=10)
HOUR = timedelta(hours=1)
# Two whole hours, well in the past so the hourly task's Flux may run over them.
START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 4 * HOUR
STOP = START + 2 * HOUR
THRESHOLDS = {
    "temperature": PANEL.metric("temperature").threshold,
    "humidity": PANEL.metric("humidity").threshold,
    "fan_pwm_duty": PANEL.metric("fan_pwm_duty").threshold,
}


def full_stream() -> pl.DataFrame:
    """Every heartbeat of two hours, one each 10 s, as the device sent them.

    Each hour opens with 15 minutes of a temperature flapping between 28 and 34 °C (every
    reading passes the dead band, so every one is stored) and then 45 quiet minutes around
    20 °C (a point every 5 minutes); humidity and fan duty wander in small steps.
    """
    rng = random.Random(6)
    humidity, fan = 45.0, 40
    rows = []
    for k in range(int((STOP - START) / EVERY)):
        when = START + k * EVERY
        burst = (when - START) % HOUR < timedelta(minutes=15)
        temperature = (28.0 if k % 2 else 34.0) if burst else 20.0 + rng.uniform(-0.3, 0.3)
        humidity = min(95.0, max(5.0, humidity + rng.uniform(-0.6, 0.6)))
        fan = min(100, max(0, fan + rng.choice((-1, 0, 0, 1))))
        rows.append((when, round(temperature, 2), round(humidity, 2), fan))
    return pl.DataFrame(
        rows,
        schema={
            "time": pl.Datetime("us", "UTC"),
            "temperature": pl.Float64,
            "humidity": pl.Float64,
            "fan_pwm_duty": pl.Int64,
        },
        orient="row",
    )


def store_thinned(client: InfluxDBClient, bucket: str, stream: pl.DataFrame) -> int:
    """Run the stream through the CDC and write the points it keeps; how many it kept."""
    tracker = CdcTracker()
    lines = []
    for when, temperature, humidity, fan in stream.iter_rows():
        reading = Reading(
            received_at=when,
            device_ts=when,
            temperature=temperature,
            humidity=humidity,
            fan_pwm_duty=fan,
            panic1=False,
            panic2=False,
            box_sw=False,
            siren=False,
            turret=False,
            device_state="NORMAL",
        )
        decision = tracker.observe(DEVICE.device_id, reading)
        if decision.write:
            lines.append(
                heartbeat(
                    DEVICE,
                    when,
                    temperature=temperature,
                    humidity=humidity,
                    fan_pwm_duty=fan,
                    change_type=str(decision.change_type),
                )
            )
    write(client, bucket, lines)
    return len(lines)


@pytest.fixture
def buckets(
    influx_client: InfluxDBClient, influx_settings: InfluxSettings
) -> Iterator[InfluxBuckets]:
    """The test's raw bucket and an hourly bucket of its own, deleted afterwards."""
    hourly = unique_name("hourly")
    org = influx_settings.influx_org
    ensure_bucket(influx_client, hourly, org, 30)
    try:
        yield InfluxBuckets(raw=influx_settings.influx_bucket, hourly=hourly)
    finally:
        bucket = find_bucket(influx_client, hourly, org)
        if bucket is not None:
            influx_client.buckets_api().delete_bucket(bucket)


def test_time_weighted_mean_of_stored_points_stays_within_the_threshold(
    influx_client: InfluxDBClient, buckets: InfluxBuckets
) -> None:
    """Per hour and sensor, the trend of the stored points is within the CDC threshold of the
    exact mean of every heartbeat; a plain mean of the stored points is far off."""
    stream = full_stream()
    kept = store_thinned(influx_client, buckets.raw, stream)
    assert kept < stream.height / 3  # the CDC did thin the stream
    exact = (
        stream.group_by(pl.col("time").dt.truncate("1h"))
        .agg(pl.exclude("time").mean())
        .sort("time")
    )
    period = Period(START, STOP)
    only = ReportFilter(hostnames=(DEVICE.hostname,))
    for field, threshold in THRESHOLDS.items():
        trend = load_trend(influx_client, buckets, field, period, HOUR, filters=only)
        assert trend["time"].to_list() == exact["time"].to_list()
        assert trend["covered_seconds"].to_list() == [3600.0, 3600.0]
        errors = [abs(a - b) for a, b in zip(trend["value"], exact[field], strict=True)]
        assert max(errors) < threshold, (field, errors)

    plain = run_flux(
        influx_client,
        f"""
from(bucket: "{buckets.raw}")
  |> range(start: {flux_time(START)}, stop: {flux_time(STOP)})
  |> filter(fn: (r) => r._measurement == "heartbeat" and r._field == "temperature")
  |> aggregateWindow(every: 1h, fn: mean, timeSrc: "_start")
""",
    )
    plain_errors = [abs(a - b) for a, b in zip(plain["_value"], exact["temperature"], strict=True)]
    assert min(plain_errors) > 10 * THRESHOLDS["temperature"], plain_errors


def test_long_ranges_read_the_hourly_downsample_with_the_same_answer(
    influx_client: InfluxDBClient, buckets: InfluxBuckets, influx_settings: InfluxSettings
) -> None:
    """Past the raw/hourly threshold the trend reads device_hourly_stats and agrees with the
    raw step-function trend, per device and for the whole fleet."""
    store_thinned(influx_client, buckets.raw, full_stream())
    run_hourly_stats(
        influx_client,
        influx_settings.influx_org,
        buckets.raw,
        buckets.hourly,
        start=START,
        stop=STOP,
    )
    period = Period(START, STOP)
    raw_query = trend_query(buckets, "humidity", period, HOUR)
    hourly_query = trend_query(buckets, "humidity", period, HOUR, hourly_after=HOUR)
    assert (raw_query.source, raw_query.name) == ("raw", "sensor_trend")
    assert (hourly_query.source, hourly_query.name) == ("hourly", "fleet_hourly")
    assert f'hourly_bucket: "{buckets.hourly}"' in hourly_query.flux
    for by in (("device_id", "hostname", "zone", "country"), ()):
        raw = load_trend(influx_client, buckets, "humidity", period, HOUR, by=by)
        hourly = load_trend(
            influx_client, buckets, "humidity", period, HOUR, by=by, hourly_after=HOUR
        )
        assert (
            hourly.select(*by, "time", "devices").rows()
            == raw.select(*by, "time", "devices").rows()
        )
        assert hourly["value"].to_list() == pytest.approx(raw["value"].to_list(), rel=1e-9)
        assert hourly["covered_seconds"].to_list() == pytest.approx(
            raw["covered_seconds"].to_list()
        )


def test_hourly_trends_need_whole_hour_windows() -> None:
    """A window shorter than an hour cannot be read from the hourly downsample."""
    buckets = InfluxBuckets(raw="raw", hourly="hourly")
    with pytest.raises(AnalyticsError, match="whole hours"):
        trend_query(buckets, "temperature", Period(START, START + 30 * 24 * HOUR), 15 * EVERY)
    query = trend_query(buckets, "temperature", Period(START, START + 30 * 24 * HOUR), 24 * HOUR)
    assert query.name == "fleet_hourly"
    assert "window: 24h," in query.flux


def test_whole_fleet_reads_the_rollup_then_the_raw_tail(
    influx_client: InfluxDBClient, buckets: InfluxBuckets, influx_settings: InfluxSettings
) -> None:
    """A selection without picked devices reads group_hourly_stats up to where the hourly
    task has reached and the raw points after it (when few): together the same trend as the
    raw points alone. Too many devices for the tail: the rollup only; nothing rolled up yet:
    the raw points only."""
    store_thinned(influx_client, buckets.raw, full_stream())
    org = influx_settings.influx_org
    run_hourly_stats(influx_client, org, buckets.raw, buckets.hourly, start=START, stop=STOP)
    period = Period(START, STOP)
    one = ReportFilter(hostnames=(DEVICE.hostname,))
    raw = load_trend(influx_client, buckets, "temperature", period, HOUR, filters=one, by=())
    assert raw.height == 2

    def fleet(devices: int, now: datetime) -> tuple[str, pl.DataFrame]:
        query = trend_query(
            buckets, "temperature", period, HOUR, by=(), fleet_devices=devices, now=now
        )
        rows = pl.concat(
            [
                run_flux(influx_client, flux)
                for flux in (query.flux, query.tail)
                if flux is not None
            ],
            how="diagonal_relaxed",
        )
        return query.source + (" + tail" if query.tail else ""), rows.sort("_time")

    mid = START + HOUR + ROLLUP_DELAY + timedelta(minutes=5)  # the first hour rolled up
    # 400 devices: 800 device-hours, past the raw budget; the last hour alone is within it.
    source, rows = fleet(400, mid)
    assert source == "groups + tail"
    assert rows["_time"].to_list() == raw["time"].to_list()
    assert rows["_value"].to_list() == pytest.approx(raw["value"].to_list())
    assert rows["covered_seconds"].to_list() == pytest.approx(raw["covered_seconds"].to_list())

    source, rows = fleet(10_000, mid)  # 10,000 device-hours of tail: not read
    assert source == "groups"
    assert rows["_time"].to_list() == raw["time"].to_list()  # both hours are rolled up here
    assert rows["_value"].to_list() == pytest.approx(raw["value"].to_list())
