"""The Flux examples of the README run, and agree with the library's queries."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS

from fleetwatch.settings import InfluxSettings
from stores.influx.flux_library import flux_time, load_query, run_flux
from tests.support.history import heartbeat, tags, write

README = Path(__file__).parents[2] / "README.md"
T = datetime(2024, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)
A, B, C = tags(1), tags(2), tags(3, zone=5)


def examples() -> list[str]:
    """The ```flux blocks of the README's 'Reports and Flux' section, in order."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Reports and Flux") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```flux\n(.*?)```", section, re.DOTALL)


def runnable(example: str, bucket: str, start: datetime, stop: datetime) -> str:
    """The example on the test's bucket, with the UI's time range variables defined."""
    lines = (
        example.replace('"heartbeats_hourly"', f'"{bucket}"')
        .replace('"heartbeats"', f'"{bucket}"')
        .splitlines(keepends=True)
    )
    at = max((i + 1 for i, line in enumerate(lines) if line.startswith("import ")), default=0)
    ui = f"v = {{timeRangeStart: {flux_time(start)}, timeRangeStop: {flux_time(stop)}}}\n"
    return "".join([*lines[:at], ui, *lines[at:]])


@pytest.fixture
def bucket(influx_settings: InfluxSettings) -> str:
    """The test's own, empty bucket."""
    return influx_settings.influx_bucket


def test_readme_has_three_examples() -> None:
    """The section shows exactly three queries to paste."""
    assert len(examples()) == 3


def test_trend_example_matches_sensor_trend(client: InfluxDBClient, bucket: str) -> None:
    """The per-device step-function trend gives sensor_trend's answer, mid-window start too."""
    lines = [
        heartbeat(A, T - 5 * M, temperature=10.0),
        heartbeat(A, T + 20 * M, temperature=20.0),
        heartbeat(A, T + 150 * M, temperature=30.0, online=False),
        heartbeat(B, T - 2 * M, temperature=5.0),
        heartbeat(B, T + 30 * M, temperature=7.0),
        heartbeat(C, T, temperature=99.0),  # zone 5: not in the example
    ]
    write(client, bucket, lines)
    for start in (T, T + 30 * M):
        stop = T + 4 * H
        example = run_flux(client, runnable(examples()[0], bucket, start, stop))
        library = run_flux(
            client,
            load_query("sensor_trend").render(
                {"bucket": bucket, "start": start, "stop": stop, "window": "1h", "zone": "3"}
            ),
        )
        got = example.sort("hostname", "_time").select("hostname", "_time", "_value")
        want = library.sort("hostname", "_time").select("hostname", "_time", "_value")
        assert got.rows() == want.rows()
    # From T+30m A holds 20 until it goes offline at T+150m; nothing counts after that.
    a = library.filter(hostname=A.hostname).sort("_time")
    assert a.select("_value", "covered_seconds").rows() == [
        (20.0, 1800.0),
        (20.0, 3600.0),
        (20.0, 1800.0),
    ]


def test_hourly_example_weights_device_hours(client: InfluxDBClient, bucket: str) -> None:
    """Zone means per day from device_hourly_stats, weighted by covered seconds."""
    lines = [
        f"device_hourly_stats,country=ES,device_id={device},hostname=h{device},zone={zone} "
        f"avg_temperature={value},covered_seconds={covered} {int((T + hour * H).timestamp())}"
        for device, zone, hour, value, covered in (
            (1, 3, 0, 10.0, 3600.0),
            (2, 3, 1, 40.0, 1200.0),
            (3, 5, 2, 7.0, 600.0),
            (1, 3, 30, 12.0, 3600.0),
        )
    ]
    client.write_api(write_options=SYNCHRONOUS).write(
        bucket=bucket, record=lines, write_precision="s"
    )
    frame = run_flux(client, runnable(examples()[1], bucket, T, T + 48 * H))
    assert frame.sort("zone", "_time").select("zone", "_time", "_value").rows() == [
        ("3", T, pytest.approx((10 * 3600 + 40 * 1200) / 4800)),
        ("3", T + 24 * H, 12.0),
        ("5", T, 7.0),
    ]


def test_snapshot_example_lists_values_in_force(client: InfluxDBClient, bucket: str) -> None:
    """The last point before the moment, for devices online then."""
    write(
        client,
        bucket,
        [
            heartbeat(A, T - 7 * M, temperature=10.0),
            heartbeat(A, T - 3 * M, temperature=11.0),
            heartbeat(B, T - 4 * M, temperature=20.0, online=False),
            heartbeat(C, T - 20 * M, temperature=30.0),  # too old: silent since
            heartbeat(C, T + M, temperature=31.0),  # after the moment
        ],
    )
    frame = run_flux(client, runnable(examples()[2], bucket, T - H, T))
    assert frame.select("hostname", "temperature").rows() == [(A.hostname, 11.0)]
    assert isinstance(frame.schema["_time"], pl.Datetime)
