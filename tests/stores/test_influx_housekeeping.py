"""Buckets, the downsampling task and its Flux, against a real InfluxDB 2.x."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest
from influxdb_client.client.influxdb_client import InfluxDBClient

from stores.influx import ensure_bucket, ensure_hourly_task, run_hourly_stats
from stores.influx.buckets import find_bucket, retention_seconds
from stores.influx.flux_library import load_query, run_flux
from stores.influx.tasks import find_tasks, task_flux, task_name
from stores.influx.writer import LineWriter
from tests.stores.conftest import NewBucket
from tests.support.hourly import finished_run, heartbeat, hour_ago, rows

DAY_S = 86_400


def _stats(client: InfluxDBClient, bucket: str) -> dict[tuple[str, datetime], dict[str, Any]]:
    """Every device_hourly_stats row of ``bucket``, by (device_id, hour)."""
    stored = rows(client, bucket, "device_hourly_stats")
    return {(row["device_id"], row["_time"]): row for row in stored}


def test_ensure_bucket_creates_once(
    client: InfluxDBClient, org: str, new_bucket: NewBucket
) -> None:
    """A second ensure_bucket returns the same bucket with the same retention."""
    name = new_bucket(30)
    first = find_bucket(client, name, org)
    again = ensure_bucket(client, name, org, 30)
    assert first is not None
    assert again.id == first.id
    assert retention_seconds(again) == retention_seconds(first) == 30 * DAY_S
    assert len(client.buckets_api().find_buckets(name=name, org=org).buckets) == 1


def test_ensure_bucket_corrects_retention(
    client: InfluxDBClient, org: str, new_bucket: NewBucket
) -> None:
    """A bucket with another retention is updated in place, shorter or longer."""
    name = new_bucket(30)
    created = find_bucket(client, name, org)
    assert created is not None
    for days in (1, 730):
        updated = ensure_bucket(client, name, org, days)
        stored = find_bucket(client, name, org)
        assert stored is not None
        assert updated.id == stored.id == created.id
        assert retention_seconds(stored) == days * DAY_S


def test_ensure_hourly_task_is_idempotent_and_updates_flux(
    client: InfluxDBClient, org: str, new_bucket: NewBucket
) -> None:
    """Two calls leave one task; a new raw bucket replaces its Flux in the same task."""
    raw, other_raw, hourly = new_bucket(30), new_bucket(30), new_bucket(730)

    first = ensure_hourly_task(client, org, raw, hourly)
    second = ensure_hourly_task(client, org, raw, hourly)
    assert second.id == first.id
    assert [task.id for task in find_tasks(client, org, task_name(hourly))] == [first.id]
    assert (first.every, first.offset, first.status) == ("1h", "5m", "active")

    moved = ensure_hourly_task(client, org, other_raw, hourly)
    tasks = find_tasks(client, org, task_name(hourly))
    assert [task.id for task in tasks] == [first.id]
    assert moved.flux == tasks[0].flux == task_flux(org, other_raw, hourly)
    assert f'raw = "{other_raw}"' in tasks[0].flux


def test_hourly_average_is_time_weighted(
    client: InfluxDBClient, org: str, new_bucket: NewBucket
) -> None:
    """20 °C for 45 min then 24 °C for 15 min averages 21.0 (the points' mean is 22.67)."""
    raw, hourly = new_bucket(30), new_bucket(730)
    hour = hour_ago(3)
    LineWriter(client, raw).write(
        [
            heartbeat(1, hour, 20.0, humidity=40.0),
            heartbeat(1, hour + timedelta(minutes=45), 24.0, humidity=60.0),
            heartbeat(1, hour + timedelta(minutes=50), 24.0, humidity=60.0),  # PERIODIC repeat
        ]
    )

    written = run_hourly_stats(client, org, raw, hourly, start=hour, stop=hour + timedelta(hours=1))

    stats = _stats(client, hourly)
    assert written == 1
    row = stats["1", hour]
    assert row["avg_temperature"] == pytest.approx(21.0)
    assert (row["min_temperature"], row["max_temperature"]) == (20.0, 24.0)
    assert row["avg_humidity"] == pytest.approx(45.0)
    assert (row["min_humidity"], row["max_humidity"]) == (40.0, 60.0)
    assert row["avg_fan_pwm_duty"] == pytest.approx(40.0)
    assert row["sample_count"] == 3
    assert row["covered_seconds"] == pytest.approx(3600.0)
    assert (row["hostname"], row["zone"], row["country"]) == ("ESG_ALARM_0001", "3", "ES")


def test_value_current_at_the_hour_start_is_carried_in(
    client: InfluxDBClient, org: str, new_bucket: NewBucket
) -> None:
    """With no point at the hour's start, the previous hour's last value holds until the first."""
    raw, hourly = new_bucket(30), new_bucket(730)
    hour = hour_ago(3)
    LineWriter(client, raw).write(
        [
            heartbeat(2, hour - timedelta(minutes=3), 18.0),
            heartbeat(2, hour + timedelta(minutes=30), 22.0, panic1=True),
        ]
    )

    written = run_hourly_stats(
        client, org, raw, hourly, start=hour - timedelta(hours=1), stop=hour + timedelta(hours=2)
    )

    stats = _stats(client, hourly)
    assert written == 2
    carried = stats["2", hour]
    assert carried["avg_temperature"] == pytest.approx(20.0)
    assert (carried["min_temperature"], carried["max_temperature"]) == (18.0, 22.0)
    assert carried["sample_count"] == 1
    assert carried["panic1_events"] == 1
    before = stats["2", hour - timedelta(hours=1)]
    assert before["avg_temperature"] == pytest.approx(18.0)
    assert before["covered_seconds"] == pytest.approx(180.0)
    # No point in the next hour nor in the 10 minutes before it: the device was not reporting
    # (the CDC writes one every 5 minutes while it does), so that hour has no row.
    assert ("2", hour + timedelta(hours=1)) not in stats


def test_transitions_offline_stretches_and_reruns(
    client: InfluxDBClient, org: str, new_bucket: NewBucket
) -> None:
    """Only false->true edges count, an offline stretch weighs nothing, a rerun replaces rows."""
    raw, hourly = new_bucket(30), new_bucket(730)
    hour = hour_ago(2)
    at = [hour + timedelta(minutes=minutes) for minutes in range(60)]
    LineWriter(client, raw).write(
        [
            heartbeat(3, hour - timedelta(minutes=2), 30.0, box_sw=True),
            heartbeat(3, at[0], 30.0, box_sw=True),
            heartbeat(3, at[10], 30.0, panic1=True, box_sw=True),
            heartbeat(3, at[20], 30.0, box_sw=True),
            heartbeat(3, at[25], 30.0, panic1=True, box_sw=True),
            heartbeat(3, at[30], 30.0, panic1=True, box_sw=True, online=False),
            heartbeat(3, at[45], 34.0, box_sw=True),
        ]
    )
    one_hour = {"start": hour, "stop": hour + timedelta(hours=1)}

    assert run_hourly_stats(client, org, raw, hourly, **one_hour) == 1
    assert run_hourly_stats(client, org, raw, hourly, **one_hour) == 1

    stats = _stats(client, hourly)
    assert list(stats) == [("3", hour)]
    row = stats["3", hour]
    assert row["panic1_events"] == 2
    assert row["tamper_events"] == 0  # closed before the hour and all through it
    assert row["sample_count"] == 6
    assert row["covered_seconds"] == pytest.approx(45 * 60.0)
    assert row["avg_temperature"] == pytest.approx((30 * 30 + 34 * 15) / 45)


def test_run_hourly_stats_wants_whole_past_hours(client: InfluxDBClient, org: str) -> None:
    """A range off the hour, empty, naive or reaching into the future is refused."""
    hour = hour_ago(2)
    bad = [
        (hour + timedelta(minutes=5), hour + timedelta(hours=1)),
        (hour, hour),
        (hour.replace(tzinfo=None), hour + timedelta(hours=1)),
        (hour, hour_ago(-1)),
    ]
    for start, stop in bad:
        with pytest.raises(ValueError, match=r"on the hour|empty|timezone|future"):
            run_hourly_stats(client, org, "raw", "hourly", start=start, stop=stop)


def test_task_run_writes_the_recent_hours(
    client: InfluxDBClient, org: str, new_bucket: NewBucket
) -> None:
    """A run of the installed task (not a copy of its Flux) writes the hours before it."""
    raw, hourly = new_bucket(30), new_bucket(730)
    scheduled = hour_ago(0)
    hour = scheduled - timedelta(hours=2)
    LineWriter(client, raw).write(
        [heartbeat(4, hour, 20.0), heartbeat(4, hour + timedelta(minutes=30), 26.0)]
    )
    task = ensure_hourly_task(client, org, raw, hourly)

    run = client.tasks_api().run_manually(task.id, scheduled_for=scheduled)
    status = finished_run(client, task.id, run.id)
    assert status == "success"
    stats = _stats(client, hourly)
    assert list(stats) == [("4", hour)]
    assert stats["4", hour]["avg_temperature"] == pytest.approx(23.0)


def test_points_by_change_type_and_group_sums(
    client: InfluxDBClient, org: str, new_bucket: NewBucket
) -> None:
    """Device rows count stored points by change_type (the carried one excluded) and
    group_hourly_stats sums them per zone and country, weighting means by covered time."""
    raw, hourly = new_bucket(30), new_bucket(730)
    hour = hour_ago(2)
    at = [hour + timedelta(minutes=minutes) for minutes in range(60)]
    LineWriter(client, raw).write(
        [
            # Device 4 (zone 3, ES): 20 °C carried in, 26 °C from :30.
            heartbeat(4, hour - timedelta(minutes=1), 20.0, change_type="SENSOR_DATA"),
            heartbeat(4, at[0], 20.0),
            heartbeat(4, at[10], 20.0, panic1=True, change_type="ALARM"),
            heartbeat(4, at[30], 26.0, change_type="SENSOR_DATA"),
            # Device 5 (zone 3, ES): 30 °C all hour.
            heartbeat(5, at[0], 30.0),
            heartbeat(5, at[5], 30.0, change_type="MULTIPLE"),
            # Device 6 (zone 5, PT): offline from :15, so only 15 min count.
            heartbeat(6, at[0], 10.0, zone=5, country="PT"),
            heartbeat(
                6, at[15], 10.0, online=False, zone=5, country="PT", change_type="CONNECTION"
            ),
            # Device 7 without zone or country.
            heartbeat(7, at[0], 15.0, zone=None, country=None),
        ]
    )

    written = run_hourly_stats(client, org, raw, hourly, start=hour, stop=hour + timedelta(hours=1))

    assert written == 4
    device = _stats(client, hourly)["4", hour]
    assert (device["points_periodic"], device["points_alarm"]) == (1, 1)
    assert device["points_sensor_data"] == 1
    assert device.get("points_multiple") is None  # a kind without points has no field
    assert device["sample_count"] == 3
    groups = {
        (row.get("zone"), row.get("country")): row
        for row in rows(client, hourly, "group_hourly_stats")
    }
    assert set(groups) == {("3", "ES"), ("5", "PT"), (None, None)}
    es = groups["3", "ES"]
    assert es["_time"] == hour
    assert es["devices"] == 2
    assert es["covered_seconds"] == pytest.approx(7200.0)
    assert es["weighted_temperature"] / es["covered_seconds"] == pytest.approx(
        (20 * 30 + 26 * 30 + 30 * 60) / 120
    )
    assert (es["sample_count"], es["panic1_events"]) == (5, 1)
    assert (es["points_periodic"], es["points_sensor_data"]) == (2, 1)
    assert (es["points_alarm"], es["points_multiple"]) == (1, 1)
    assert es.get("points_connection") is None
    pt = groups["5", "PT"]
    assert (pt["devices"], pt["covered_seconds"]) == (1, pytest.approx(900.0))
    assert (pt["points_periodic"], pt["points_connection"]) == (1, 1)
    assert groups[None, None]["weighted_temperature"] == pytest.approx(15.0 * 3600)


def test_group_rollup_reads_agree_with_the_devicerows(
    client: InfluxDBClient, org: str, new_bucket: NewBucket
) -> None:
    """group_trend.flux over the rollup gives fleet_hourly.flux's answer over the device rows,
    and stored_points_per_day.flux counts the stored points by change type either way."""
    raw, hourly = new_bucket(30), new_bucket(730)
    first = hour_ago(3)
    lines = []
    for device, (zone, country, base) in {
        8: (3, "ES", 20.0),
        9: (3, "ES", 26.0),
        10: (5, "PT", 14.0),
    }.items():
        for minute in range(0, 120, 5):
            kind = "SENSOR_DATA" if minute % 30 == 5 else "PERIODIC"
            when = first + timedelta(minutes=minute)
            value = base + minute / 60
            point = heartbeat(device, when, value, zone=zone, country=country, change_type=kind)
            lines.append(point)
    LineWriter(client, raw).write(lines)
    run_hourly_stats(client, org, raw, hourly, start=first, stop=first + timedelta(hours=2))
    params = {"hourly_bucket": hourly, "start": first, "stop": first + timedelta(hours=2)}

    def flux(name: str, **extra: str) -> pl.DataFrame:
        return run_flux(client, load_query(name).render({**params, **extra}), org=org)

    for by in ("", "zone"):
        rollup = flux("group_trend", window="1h", by=by).sort([*filter(None, [by]), "_time"])
        devices = flux("fleet_hourly", window="1h", by=by).sort([*filter(None, [by]), "_time"])
        assert rollup.height == devices.height == (2 if by == "" else 4)
        assert rollup["_value"].to_list() == pytest.approx(devices["_value"].to_list())
        assert rollup["devices"].to_list() == devices["devices"].to_list()
    # Hour windows (a 2-hour one would depend on the hour's parity: windows start at the epoch).
    zone_3 = flux("group_trend", window="1h", zone="3").sort("_time")
    # Steps of 20 + t/60 and 26 + t/60 held 5 minutes each: t averages 27.5 min in the first
    # hour, 87.5 in the second.
    assert zone_3["_value"].to_list() == pytest.approx([23.0 + 27.5 / 60, 23.0 + 87.5 / 60])
    assert zone_3["devices"].to_list() == [2, 2]
    counts = flux("stored_points_per_day")
    by_kind = dict(counts.group_by("change_type").agg(pl.col("points").sum()).iter_rows())
    assert by_kind["PERIODIC"] + by_kind["SENSOR_DATA"] == len(lines)
    assert by_kind["SENSOR_DATA"] == 3 * 4
    picked = flux("stored_points_per_day", hostnames="ESG_ALARM_0008,ESG_ALARM_0010")
    assert picked["points"].sum() == 2 * 24
