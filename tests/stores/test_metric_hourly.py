"""The hourly downsample of metric histories (telemetry, robot parts), against a real
InfluxDB 2.x: per metric, time-weighted, offline-aware, with the carried value."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest
from influxdb_client.client.influxdb_client import InfluxDBClient

from analytics.load import InfluxBuckets, metric_trend_query
from analytics.selection import Period
from ingest.kinds import metric_measurements
from stores.influx import ensure_hourly_task, run_hourly_stats
from stores.influx.flux_library import load_query, run_flux
from stores.influx.points import MetricPoint, metric_line
from stores.influx.tasks import task_flux
from stores.influx.writer import LineWriter
from tests.stores.conftest import NewBucket
from tests.support.hourly import finished_run, heartbeat, hour_ago, rows

HOUR, DAY = timedelta(hours=1), timedelta(days=1)
Stats = dict[tuple[str, str, str, datetime], dict[str, Any]]


def _reading(
    device_id: int,
    when: datetime,
    values: dict[str, float | int | bool | str | None],
    *,
    measurement: str = "telemetry",
    online: bool = True,
    extra_tags: dict[str, str] | None = None,
) -> str:
    """Line protocol of one CDC-written metric point."""
    tags = {"device_id": str(device_id), "hostname": f"VIB-SN-{device_id:03d}"}
    if measurement == "telemetry":
        tags["device_type"] = "vibration_sensor"
    return metric_line(
        MetricPoint(
            measurement=measurement,
            tags=tags | (extra_tags or {}),
            time=when,
            values=values,
            is_online=online,
            change_type="SENSOR_DATA",
            changes={},
            device_time=None,
        )
    )


def _stats(client: InfluxDBClient, bucket: str) -> Stats:
    """Every metric_hourly_stats row, by (source, series, metric, hour); the series is the
    device id, or the servo id for servos."""
    return {
        (
            row["source"],
            row.get("servo_id") or row["device_id"],
            row["metric"],
            row["_time"],
        ): row
        for row in rows(client, bucket, "metric_hourly_stats")
    }


def test_every_metric_history_is_declared() -> None:
    """The task downsamples telemetry and seed 004's five robot measurements, from the kinds."""
    assert metric_measurements() == (
        "battery",
        "imu",
        "performance",
        "sensors",
        "servos",
        "telemetry",
    )


def test_each_metric_is_time_weighted_with_flags_and_words_handled(
    client: InfluxDBClient, org: str, new_bucket: NewBucket
) -> None:
    """2 mm/s for 45 min then 6 for 15 averages 3.0; a flag averages to its share of time;
    a word is left out; a metric missing from a point holds its previous value."""
    raw, hourly = new_bucket(30), new_bucket(730)
    hour = hour_ago(3)
    LineWriter(client, raw).write(
        [
            _reading(1, hour, {"vibration": 2.0, "temperature": 30.0, "alarm": False}),
            _reading(1, hour + timedelta(minutes=30), {"vibration": 2.0, "alarm": True}),
            _reading(1, hour + timedelta(minutes=45), {"vibration": 6.0, "mode": "run"}),
        ]
    )

    written = run_hourly_stats(
        client,
        org,
        raw,
        hourly,
        start=hour,
        stop=hour + timedelta(hours=1),
        metric_measurements=["telemetry"],
    )

    assert written == 0  # no heartbeat
    stats = _stats(client, hourly)
    assert {key[2] for key in stats} == {"vibration", "temperature", "alarm"}
    vibration = stats["telemetry", "1", "vibration", hour]
    assert vibration["avg"] == pytest.approx(3.0)
    assert (vibration["min"], vibration["max"]) == (2.0, 6.0)
    assert vibration["covered_seconds"] == pytest.approx(3600.0)
    assert vibration["sample_count"] == 3
    assert (vibration["hostname"], vibration["device_type"]) == ("VIB-SN-001", "vibration_sensor")
    temperature = stats["telemetry", "1", "temperature", hour]
    assert temperature["avg"] == pytest.approx(30.0)
    assert temperature["sample_count"] == 1
    assert temperature["covered_seconds"] == pytest.approx(3600.0)
    alarm = stats["telemetry", "1", "alarm", hour]
    assert alarm["avg"] == pytest.approx(0.5)  # on from :30 (held through the :45 point)
    assert (alarm["min"], alarm["max"]) == (0.0, 1.0)


def test_carried_value_and_offline_stretch(
    client: InfluxDBClient, org: str, new_bucket: NewBucket
) -> None:
    """The value in force at the hour's start is carried in; an offline marker's stretch
    counts for nothing; an hour without live values has no row; a rerun replaces rows."""
    raw, hourly = new_bucket(30), new_bucket(730)
    hour = hour_ago(3)
    at = [hour + timedelta(minutes=minutes) for minutes in range(60)]
    LineWriter(client, raw).write(
        [
            _reading(2, hour - timedelta(minutes=4), {"vibration": 4.0}),
            _reading(2, at[20], {"vibration": 8.0}),
            _reading(2, at[30], {"vibration": 8.0}, online=False),
            _reading(2, at[45], {"vibration": 1.0}),
        ]
    )
    span = {"start": hour - timedelta(hours=1), "stop": hour + timedelta(hours=2)}

    for _ in range(2):
        run_hourly_stats(client, org, raw, hourly, **span, metric_measurements=["telemetry"])

    stats = _stats(client, hourly)
    assert sorted(key[3] for key in stats) == [hour - timedelta(hours=1), hour]
    row = stats["telemetry", "2", "vibration", hour]
    # 4.0 for 20 min, 8.0 for 10, offline 15, then 1.0 for 15; the next hour's carry
    # (10 minutes back) finds no point, so it has no row.
    assert row["covered_seconds"] == pytest.approx(45 * 60.0)
    assert row["avg"] == pytest.approx((4 * 20 + 8 * 10 + 1 * 15) / 45)
    assert (row["min"], row["max"]) == (1.0, 8.0)
    assert row["sample_count"] == 3
    before = stats["telemetry", "2", "vibration", hour - timedelta(hours=1)]
    assert before["covered_seconds"] == pytest.approx(240.0)


def test_robot_parts_keep_their_instances_apart(
    client: InfluxDBClient, org: str, new_bucket: NewBucket
) -> None:
    """Each servo of a robot is its own series of rows; the heartbeat's statistics are
    computed in the same run, untouched."""
    raw, hourly = new_bucket(30), new_bucket(730)
    hour = hour_ago(2)

    def servo(servo_id: str, minute: int, temperature: float) -> str:
        return _reading(
            7,
            hour + timedelta(minutes=minute),
            {"position": 2048, "temperature": temperature, "load": 10.0},
            measurement="servos",
            extra_tags={"robot_id": "tonypi_07", "servo_id": servo_id},
        )

    LineWriter(client, raw).write(
        [
            servo("servo_1", 0, 40.0),
            servo("servo_1", 30, 50.0),
            servo("servo_2", 0, 35.0),
            heartbeat(1, hour, 20.0),
        ]
    )

    written = run_hourly_stats(
        client,
        org,
        raw,
        hourly,
        start=hour,
        stop=hour + timedelta(hours=1),
        metric_measurements=metric_measurements(),
    )

    assert written == 1  # the panel's device-hour
    stats = _stats(client, hourly)
    assert stats["servos", "servo_1", "temperature", hour]["avg"] == pytest.approx(45.0)
    assert stats["servos", "servo_2", "temperature", hour]["avg"] == pytest.approx(35.0)
    assert stats["servos", "servo_1", "position", hour]["avg"] == pytest.approx(2048.0)
    assert stats["servos", "servo_1", "temperature", hour]["robot_id"] == "tonypi_07"
    assert {key[0] for key in stats} == {"servos"}
    assert len(rows(client, hourly, "device_hourly_stats")) == 1


def test_hourly_trend_agrees_with_the_raw_trend(
    client: InfluxDBClient, org: str, new_bucket: NewBucket
) -> None:
    """metric_hourly_trend.flux over the downsample gives sensor_trend.flux's answer over the
    raw telemetry points, per device and for the type."""
    raw, hourly = new_bucket(30), new_bucket(730)
    first = hour_ago(3)
    lines = [
        _reading(device, first + timedelta(minutes=minute), {"vibration": base + minute / 10})
        for device, base in ((3, 1.0), (4, 5.0))
        for minute in range(0, 120, 5)
    ]
    LineWriter(client, raw).write(lines)
    stop = first + timedelta(hours=2)
    run_hourly_stats(
        client, org, raw, hourly, start=first, stop=stop, metric_measurements=["telemetry"]
    )

    for by in ("", "device_id,hostname"):
        common = {"start": first, "stop": stop, "window": "1h", "by": by}
        from_hours = run_flux(
            client,
            load_query("metric_hourly_trend").render(
                {**common, "hourly_bucket": hourly, "metric": "vibration"}
            ),
            org=org,
        )
        from_raw = run_flux(
            client,
            load_query("sensor_trend").render(
                {**common, "bucket": raw, "measurement": "telemetry", "field": "vibration"}
            ),
            org=org,
        )
        keys = [*filter(None, by.split(",")), "_time"]
        from_hours, from_raw = from_hours.sort(keys), from_raw.sort(keys)
        assert from_hours.height == from_raw.height == (2 if by == "" else 4)
        assert from_hours["_value"].to_list() == pytest.approx(from_raw["_value"].to_list())
        assert from_hours["devices"].to_list() == from_raw["devices"].to_list()
    # Steps of base + t/10 held 5 minutes each: t averages 27.5 min in the first hour.
    one = run_flux(
        client,
        load_query("metric_hourly_trend").render(
            {
                "hourly_bucket": hourly,
                "metric": "vibration",
                "start": first,
                "stop": stop,
                "window": "1h",
                "by": "",
                "hostnames": "VIB-SN-003",
            }
        ),
        org=org,
    ).sort("_time")
    assert one["_value"].to_list() == pytest.approx([1.0 + 2.75, 1.0 + 8.75])
    assert isinstance(one, pl.DataFrame)


def test_installed_task_downsamples_the_metric_histories(
    client: InfluxDBClient, org: str, new_bucket: NewBucket
) -> None:
    """A run of the installed task (with the declared measurements) writes their hours."""
    raw, hourly = new_bucket(30), new_bucket(730)
    scheduled = hour_ago(0)
    hour = scheduled - timedelta(hours=2)
    LineWriter(client, raw).write(
        [
            _reading(5, hour, {"vibration": 2.0}),
            _reading(5, hour + timedelta(minutes=30), {"vibration": 4.0}),
            _reading(6, hour, {"percentage": 80.0, "charging": False}, measurement="battery"),
        ]
    )
    task = ensure_hourly_task(client, org, raw, hourly, metric_measurements())
    assert task.flux == task_flux(org, raw, hourly, metric_measurements())

    run = client.tasks_api().run_manually(task.id, scheduled_for=scheduled)
    status = finished_run(client, task.id, run.id)
    assert status == "success"
    stats = _stats(client, hourly)
    assert stats["telemetry", "5", "vibration", hour]["avg"] == pytest.approx(3.0)
    assert stats["battery", "6", "percentage", hour]["avg"] == pytest.approx(80.0)
    assert stats["battery", "6", "charging", hour]["avg"] == pytest.approx(0.0)


def test_telemetry_trend_reads_the_downsample_for_long_periods() -> None:
    """Two days or less read raw points; longer periods with whole-hour windows the hours."""
    buckets = InfluxBuckets(raw="raw", hourly="hourly")
    start = hour_ago(24 * 40)
    short = metric_trend_query(
        buckets, "vibration_sensor", "vibration", Period(start, start + timedelta(days=2)), HOUR
    )
    long = metric_trend_query(
        buckets, "vibration_sensor", "vibration", Period(start, start + timedelta(days=30)), DAY
    )
    odd = metric_trend_query(
        buckets,
        "vibration_sensor",
        "vibration",
        Period(start, start + timedelta(days=30)),
        timedelta(minutes=90),
    )
    assert (short.source, short.name) == ("raw", "sensor_trend")
    assert (long.source, long.name) == ("hourly", "metric_hourly_trend")
    assert 'hourly_bucket: "hourly"' in long.flux
    assert 'metric: "vibration"' in long.flux
    assert (odd.source, odd.name) == ("raw", "sensor_trend")
