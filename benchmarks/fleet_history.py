"""A large fleet's history, written straight into the stores for the dashboard benchmark.

Replaying a month of 10,000 devices through ingest (2.6 billion heartbeats) is out of
reach, so the history is generated in the shape ingest and the hourly task leave it:

* PostgreSQL (SQL ``generate_series``, in the server): devices, their status, one
  ``heartbeat_counts`` row per device and hour (360 received, about 15 written), about one
  alarm event per device and day (a few still open) and one command per three devices and
  day, across every status;
* InfluxDB raw bucket: the CDC points of the last ``raw_hours`` for every device (a PERIODIC
  point every 5 minutes plus about 4 SENSOR_DATA points an hour, sensors on random walks),
  and of the whole ``picked_days`` for the first ``picked`` devices (the ones a benchmark
  picks in the sidebar);
* InfluxDB hourly bucket: ``device_hourly_stats`` for every device and hour of the month
  but the last, and ``group_hourly_stats`` summed from them per zone and country, as
  toGroups() does. The last hour is downsampled from the raw points by the real Flux
  (``stores.influx.run_hourly_stats``), which also times the hourly task at this size.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import psycopg
from influxdb_client.client.influxdb_client import InfluxDBClient

from stores.influx import run_hourly_stats
from stores.influx.writer import LineWriter

logger = logging.getLogger(__name__)

COUNTRIES = ("ES", "PT", "FR", "IT", "DE")
ZONES = 20
_HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class HistoryShape:
    """How much history to make.

    Attributes:
        devices: fleet size.
        days: length of the history, ending at ``now`` (rounded down to the hour).
        raw_hours: hours of raw CDC points for every device.
        picked: devices with raw points over ``picked_days``.
        picked_days: days of raw points for the picked devices.
        seed: random seed (the same shape and seed make the same history).
    """

    devices: int
    days: int
    raw_hours: int = 24
    picked: int = 50
    picked_days: int = 7
    seed: int = 7


def hostname(device: int) -> str:
    """The hostname of device number ``device`` (1-based)."""
    return f"ESG_ALARM_{device:05d}"


def fill_postgres(database_url: str, shape: HistoryShape, now: datetime) -> dict[str, float]:
    """Write the relational history; seconds spent per table."""
    timings: dict[str, float] = {}
    start = now - timedelta(days=shape.days)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT setseed(%s)", (shape.seed / 1000,))
        for table, statement in _pg_statements():
            began = time.perf_counter()
            params = {
                "n": shape.devices,
                "start": start,
                "now": now,
                "zones": ZONES,
                "countries": list(COUNTRIES),
                "country_count": len(COUNTRIES),
            }
            conn.execute(statement, params)
            timings[table] = time.perf_counter() - began
            logger.info("%s filled in %.1f s", table, timings[table])
        conn.execute("ANALYZE")
    return timings


def _pg_statements() -> list[tuple[str, str]]:
    return [
        (
            "devices",
            """
            INSERT INTO devices (id, mac_address, hostname, zone, country, active)
            SELECT g, ('0200' || lpad(to_hex(g), 8, '0'))::macaddr,
                   'ESG_ALARM_' || lpad(g::text, 5, '0'), 1 + g %% %(zones)s,
                   (%(countries)s::text[])[1 + g %% %(country_count)s], true
            FROM generate_series(1, %(n)s) g
            """,
        ),
        (
            "device_status",
            """
            INSERT INTO device_status (device_id, is_online, last_seen, firmware_version,
                device_state, free_heap, min_heap, rssi, network_type, uptime, boot_count,
                wifi_disconnects, mqtt_disconnects, error_count, temperature, humidity,
                fan_pwm_duty, device_synced, panic1_count, panic2_count, tamper_count)
            SELECT g, g %% 40 <> 0,
                   %(now)s - CASE WHEN g %% 40 = 0 THEN interval '3 hours' * (1 + g %% 7)
                                  ELSE interval '1 second' * (g %% 10) END,
                   (ARRAY['1.4.2','1.5.0','1.5.1','2.0.0'])[1 + g %% 4],
                   CASE WHEN g %% 40 = 0 THEN 'OFFLINE' WHEN g %% 97 = 0 THEN 'ALARM'
                        ELSE 'NORMAL' END,
                   120000 + (g * 7919) %% 80000, 60000 + (g * 104729) %% 40000,
                   -45 - (g * 31) %% 50, 'wifi', (g * 977) %% 2000000, 1 + g %% 9,
                   g %% 5, g %% 3, g %% 11, 18 + (g %% 90) / 10.0, 35 + (g %% 30), 20 + g %% 60,
                   g %% 250 <> 0, g %% 13, g %% 17, g %% 19
            FROM generate_series(1, %(n)s) g
            """,
        ),
        (
            "heartbeat_counts",
            """
            INSERT INTO heartbeat_counts (device_id, hour, received, written)
            SELECT d, h, 360, 12 + floor(random() * 8)::int
            FROM generate_series(1, %(n)s) d,
                 generate_series(%(start)s::timestamptz, %(now)s - interval '1 hour',
                                 interval '1 hour') h
            """,
        ),
        (
            "alarm_events",
            """
            INSERT INTO alarm_events (device_id, sequence, timestamp, alarm_type, event_state,
                priority, physical_state, resolved_at, acknowledged_at, acknowledged_by)
            SELECT d, day, t,
                   (ARRAY['PANIC1','PANIC2','TAMPER','INTRUSION'])[1 + (d + day) %% 4]
                       ::alarm_type_enum,
                   CASE WHEN open THEN 'ACTIVE' ELSE 'INACTIVE' END::event_state_enum,
                   (ARRAY['CRITICAL','HIGH','MEDIUM'])[1 + (d * day) %% 3]::priority_enum,
                   open,
                   CASE WHEN open THEN NULL
                        ELSE t + interval '1 second' * (30 + (d * 37 + day * 11) %% 3600) END,
                   t + interval '1 second' * (10 + (d * 13 + day) %% 600), 'operator'
            FROM (
                SELECT d, day,
                       %(start)s::timestamptz + interval '1 day' * day
                           + interval '1 second' * ((d * 7919 + day * 104729) %% 86400) AS t,
                       d %% 500 = 0 AND day = 0 AS open
                FROM generate_series(1, %(n)s) d,
                     generate_series(0, (%(now)s::date - %(start)s::date) - 1) day
            ) a
            WHERE t < %(now)s
            """,
        ),
        (
            "command_log",
            """
            INSERT INTO command_log (device_id, request_id, timestamp, command_type, status,
                sent_at, acknowledged_at, completed_at, failed_at, retry_count, initiated_by)
            SELECT d, gen_random_uuid(), t,
                   (ARRAY['OUTPUT','CONFIG','DIAGNOSTIC','SYSTEM'])[1 + (d + day) %% 4]
                       ::command_type_enum,
                   s::command_status_enum, t + interval '1 second',
                   CASE WHEN s IN ('COMPLETED','FAILED') THEN t + interval '2 seconds' END,
                   CASE WHEN s = 'COMPLETED' THEN t + interval '5 seconds' END,
                   CASE WHEN s IN ('FAILED','TIMEOUT') THEN t + interval '40 seconds' END,
                   (d + day) %% 3, 'bench'
            FROM (
                SELECT d, day,
                       %(start)s::timestamptz + interval '1 day' * day
                           + interval '1 second' * ((d * 31 + day * 7) %% 86400) AS t,
                       (ARRAY['COMPLETED','COMPLETED','COMPLETED','COMPLETED','COMPLETED',
                              'COMPLETED','FAILED','TIMEOUT','CANCELLED'])[1 + (d * day) %% 9]
                           AS s
                FROM generate_series(1, %(n)s, 3) d,
                     generate_series(0, (%(now)s::date - %(start)s::date) - 1) day
            ) c
            WHERE t < %(now)s
            """,
        ),
    ]


# --- InfluxDB ------------------------------------------------------------------------------


def _device_frame(devices: int) -> pl.DataFrame:
    ids = pl.int_range(1, devices + 1, eager=True)
    return pl.DataFrame(
        {
            "device_id": ids,
            "hostname": ids.map_elements(hostname, return_dtype=pl.String),
            "zone": 1 + ids % ZONES,
            "country": ids.map_elements(lambda d: COUNTRIES[d % len(COUNTRIES)], pl.String),
        }
    )


def _tag_expr(measurement: str) -> pl.Expr:
    return pl.format(
        measurement + ",country={},device_id={},hostname={},zone={}",
        "country",
        "device_id",
        "hostname",
        "zone",
    )


def raw_lines(devices: pl.DataFrame, start: datetime, hours: int, seed: int) -> pl.DataFrame:
    """CDC heartbeat points of ``devices`` over ``hours`` from ``start``: a ``line`` column."""
    rng = np.random.default_rng(seed)
    per_hour = 16  # 12 PERIODIC (every 5 min) + 4 SENSOR_DATA
    slots = hours * per_hour
    n = devices.height
    offsets = np.concatenate(
        [
            np.arange(hours * 12) * 300.0,
            rng.uniform(0, hours * 3600.0, size=hours * 4),
        ]
    )
    order = np.argsort(offsets)
    kinds = np.where(np.arange(slots) < hours * 12, "PERIODIC", "SENSOR_DATA")[order]
    offsets = offsets[order]
    temps = 21.0 + np.cumsum(rng.normal(0, 0.35, size=(n, slots)), axis=1).clip(-8, 8)
    hums = 45.0 + np.cumsum(rng.normal(0, 1.2, size=(n, slots)), axis=1).clip(-20, 20)
    # Line protocol in milliseconds, as ingest writes it.
    times = int(start.timestamp()) * 1000 + (offsets * 1e3).astype(np.int64)
    frame = pl.DataFrame(
        {
            "row": np.repeat(np.arange(n), slots),
            "time": np.tile(times, n),
            "change_type": np.tile(kinds, n),
            "temperature": temps.round(1).ravel(),
            "humidity": hums.round(1).ravel(),
        }
    ).with_columns(fan=(pl.col("temperature") * 2).round(0).cast(pl.Int64))
    tagged = frame.join(devices.with_row_index("row").cast({"row": pl.Int64}), on="row")
    return tagged.select(
        line=pl.format(
            "{} temperature={},humidity={},fan_pwm_duty={}i,panic1=false,panic2=false,"
            'box_sw=false,siren=false,turret=false,is_online=true,device_state="NORMAL",'
            'change_type="{}" {}',
            _tag_expr("heartbeat"),
            "temperature",
            "humidity",
            "fan",
            "change_type",
            "time",
        )
    )


def hourly_frames(
    devices: pl.DataFrame, start: datetime, hours: int, seed: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``device_hourly_stats`` rows for every device and hour, and their per zone/country
    sums as ``group_hourly_stats``: two frames with a ``line`` column."""
    rng = np.random.default_rng(seed + 1)
    n = devices.height
    hour_ms = int(start.timestamp()) * 1000 + np.arange(hours, dtype=np.int64) * 3_600_000
    daily = np.sin(np.arange(hours) / 24 * 2 * np.pi)
    temp = 21 + 3 * daily + rng.normal(0, 1.5, size=(n, 1)) + rng.normal(0, 0.3, (n, hours))
    rows = pl.DataFrame(
        {
            "row": np.repeat(np.arange(n), hours),
            "time": np.tile(hour_ms, n),
            "avg_temperature": temp.round(2).ravel(),
            "avg_humidity": (45 + rng.normal(0, 4, (n, hours))).round(2).ravel(),
            "avg_fan_pwm_duty": (30 + rng.normal(0, 5, (n, hours))).round(2).ravel(),
            "covered_seconds": np.where(rng.random((n, hours)) < 0.02, 1800.0, 3600.0).ravel(),
            "points_periodic": np.full(n * hours, 12),
            "points_sensor_data": rng.poisson(4, n * hours),
            "points_alarm": (rng.random(n * hours) < 0.04).astype(np.int64),
        }
    ).join(devices.with_row_index("row").cast({"row": pl.Int64}), on="row")
    rows = rows.with_columns(
        sample_count=pl.col("points_periodic")
        + pl.col("points_sensor_data")
        + pl.col("points_alarm")
    )
    device_lines = rows.select(
        line=pl.format(
            "{} avg_temperature={},min_temperature={},max_temperature={},avg_humidity={},"
            "min_humidity={},max_humidity={},avg_fan_pwm_duty={},covered_seconds={},"
            "sample_count={}i,panic1_events={}i,panic2_events=0i,tamper_events=0i,"
            "points_periodic={}i,points_sensor_data={}i,points_alarm={}i,"
            "points_state_change=0i,points_connection=0i,points_multiple=0i {}",
            _tag_expr("device_hourly_stats"),
            "avg_temperature",
            pl.col("avg_temperature") - 0.4,
            pl.col("avg_temperature") + 0.4,
            "avg_humidity",
            pl.col("avg_humidity") - 1,
            pl.col("avg_humidity") + 1,
            "avg_fan_pwm_duty",
            "covered_seconds",
            "sample_count",
            "points_alarm",
            "points_periodic",
            "points_sensor_data",
            "points_alarm",
            "time",
        )
    )
    groups = rows.group_by("time", "zone", "country").agg(
        devices=pl.len(),
        covered=pl.col("covered_seconds").sum(),
        wt=(pl.col("avg_temperature") * pl.col("covered_seconds")).sum(),
        wh=(pl.col("avg_humidity") * pl.col("covered_seconds")).sum(),
        wf=(pl.col("avg_fan_pwm_duty") * pl.col("covered_seconds")).sum(),
        samples=pl.col("sample_count").sum(),
        periodic=pl.col("points_periodic").sum(),
        sensor=pl.col("points_sensor_data").sum(),
        alarm=pl.col("points_alarm").sum(),
    )
    return device_lines, groups


def group_lines(partial_sums: list[pl.DataFrame]) -> pl.DataFrame:
    """``group_hourly_stats`` lines from the per-chunk sums of :func:`hourly_frames` (chunks
    share zones and hours, so they are summed again first)."""
    sums = pl.concat(partial_sums).group_by("time", "zone", "country").agg(pl.all().sum())
    return sums.select(
        line=pl.format(
            "group_hourly_stats,country={},zone={} devices={}i,covered_seconds={},"
            "weighted_temperature={},weighted_humidity={},weighted_fan_pwm_duty={},"
            "sample_count={}i,panic1_events={}i,panic2_events=0i,tamper_events=0i,"
            "points_periodic={}i,points_sensor_data={}i,points_alarm={}i,"
            "points_state_change=0i,points_connection=0i,points_multiple=0i {}",
            "country",
            "zone",
            "devices",
            "covered",
            "wt",
            "wh",
            "wf",
            "samples",
            "alarm",
            "periodic",
            "sensor",
            "alarm",
            "time",
        )
    )


def _write(client: InfluxDBClient, bucket: str, lines: pl.DataFrame) -> None:
    LineWriter(client, bucket, chunk=20_000).write(lines["line"].to_list())


def _device_chunks(devices: pl.DataFrame, size: int) -> Iterator[pl.DataFrame]:
    for offset in range(0, devices.height, size):
        yield devices.slice(offset, size)


def fill_influx(
    client: InfluxDBClient,
    *,
    org: str,
    raw_bucket: str,
    hourly_bucket: str,
    shape: HistoryShape,
    now: datetime,
) -> dict[str, float]:
    """Write the time-series history; seconds spent per part (and the real downsampling's)."""
    timings: dict[str, float] = {}
    top = now.replace(minute=0, second=0, microsecond=0)
    devices = _device_frame(shape.devices)
    raw_start = top - shape.raw_hours * _HOUR
    picked_start = top - timedelta(days=shape.picked_days)
    month_start = top - timedelta(days=shape.days)

    began = time.perf_counter()
    points = 0
    for number, chunk in enumerate(_device_chunks(devices, 500)):
        lines = raw_lines(chunk, raw_start, shape.raw_hours + 1, shape.seed + number)
        points += lines.height
        _write(client, raw_bucket, lines)
    picked = devices.head(shape.picked)
    older = int((raw_start - picked_start) / _HOUR)
    lines = raw_lines(picked, picked_start, older, shape.seed + 999)
    points += lines.height
    _write(client, raw_bucket, lines)
    timings["raw points"] = time.perf_counter() - began
    logger.info("%d raw points written in %.1f s", points, timings["raw points"])

    # Every hour but the last is generated; the last is downsampled by the real Flux, which
    # times one run of the hourly task's work at this fleet size.
    began = time.perf_counter()
    last = top - _HOUR
    hours = int((last - month_start) / _HOUR)
    rows = 0
    sums: list[pl.DataFrame] = []
    for number, chunk in enumerate(_device_chunks(devices, 1000)):
        device_lines, partial = hourly_frames(chunk, month_start, hours, shape.seed + number)
        rows += device_lines.height
        sums.append(partial)
        _write(client, hourly_bucket, device_lines)
    _write(client, hourly_bucket, group_lines(sums))
    timings["hourly rows"] = time.perf_counter() - began
    logger.info("%d device-hours written in %.1f s", rows, timings["hourly rows"])

    began = time.perf_counter()
    written = run_hourly_stats(client, org, raw_bucket, hourly_bucket, start=last, stop=top)
    timings["hourly downsampling of 1 hour"] = time.perf_counter() - began
    logger.info(
        "downsampled 1 hour of %d devices in %.1f s",
        written,
        timings["hourly downsampling of 1 hour"],
    )
    return timings
