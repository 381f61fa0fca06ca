"""'fleetwatch flux list|run|query' against a real InfluxDB."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from fleetwatch.cli import main
from fleetwatch.settings import InfluxSettings
from stores.influx import ensure_bucket
from tests.conftest import unique_name
from tests.support.history import heartbeat, tags, write
from tests.support.influx_env import InfluxEnv, own_influx_env

# Running the CLI installs root-logger handlers: undo them after each test.
pytestmark = pytest.mark.usefixtures("restore_root_logging")

# Midnight two days ago: inside the raw bucket's retention.
T = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
DAY = T.date().isoformat()
DEVICE = tags(1)


def at(moment: datetime) -> str:
    """``moment`` as an RFC 3339 parameter value."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def influx_env(
    influx_service: InfluxSettings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[InfluxEnv]:
    """FLEETWATCH_INFLUX_* naming a raw bucket (10 then 20 °C from T+30 s) of the test's own."""
    with own_influx_env(influx_service, monkeypatch, unique_name("flux")) as env:
        ensure_bucket(env.client, env.raw_bucket, env.org, 30)
        lines = [
            heartbeat(DEVICE, T - timedelta(minutes=1), temperature=10.0),
            heartbeat(DEVICE, T + timedelta(seconds=30), temperature=20.0),
        ]
        write(env.client, env.raw_bucket, lines)
        yield env


def test_list_shows_queries_and_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    """Every ready-made query is listed with its description and parameters."""
    assert main(["flux", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("sensor_trend", "device_series", "fleet_hourly", "alarm_points"):
        assert f"\n{name}\n" in f"\n{out}"
    assert "cdc_points_per_day" in out
    assert "\nhourly_stats\n" not in out
    assert "window         duration  width of each window (default 1h)" in out


def test_run_prints_csv_with_the_settings_bucket(
    influx_env: InfluxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """sensor_trend reads FLEETWATCH_INFLUX_BUCKET by default; --csv prints CSV."""
    args = ["flux", "run", "sensor_trend", "-p", f"start={DAY}", "--param"]
    args += [f"stop={at(T + timedelta(minutes=2))}", "-p", "window=1m", "--csv"]
    assert main(args) == 0
    frame = pl.read_csv(io.StringIO(capsys.readouterr().out))
    assert frame.select("hostname", "_value").rows() == [
        (DEVICE.hostname, 15.0),  # 10 carried in for 30 s, then 20
        (DEVICE.hostname, 20.0),
    ]


def test_run_prints_a_table(influx_env: InfluxEnv, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --csv the result is a table with a row count."""
    args = ["flux", "run", "device_series", "-p", f"hostname={DEVICE.hostname}"]
    span = [f"start={at(T - timedelta(days=1))}", "-p", f"stop={at(T + timedelta(days=1))}"]
    assert main([*args, "-p", *span]) == 0
    out = capsys.readouterr().out
    assert "temperature" in out
    assert out.rstrip().endswith("2 rows")


def test_show_prints_the_rendered_flux(
    influx_env: InfluxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """--show prints the query to paste into the InfluxDB UI, buckets from the settings."""
    assert main(["flux", "run", "fleet_hourly", "--show", "-p", "zone=3"]) == 0
    out = capsys.readouterr().out
    assert f'hourly_bucket: "{influx_env.hourly_bucket}",' in out
    assert 'zone: "3",' in out
    assert "from(bucket: params.hourly_bucket)" in out


def test_query_runs_flux_from_stdin(
    influx_env: InfluxEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """'-' reads the engineer's own Flux from standard input."""
    flux = f"""
from(bucket: "{influx_env.raw_bucket}")
  |> range(start: {at(T - timedelta(days=1))}, stop: {at(T + timedelta(days=1))})
  |> filter(fn: (r) => r._field == "temperature")
  |> count()
"""
    monkeypatch.setattr("sys.stdin", io.StringIO(flux))
    assert main(["flux", "query", "-", "--csv"]) == 0
    frame = pl.read_csv(io.StringIO(capsys.readouterr().out))
    assert frame["_value"].to_list() == [2]


def test_errors_are_reported_with_exit_codes(
    influx_env: InfluxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unknown queries and bad parameters exit 2; Flux InfluxDB refuses exits 1."""
    assert main(["flux", "run", "nope"]) == 2
    assert "no Flux query 'nope'" in capsys.readouterr().err
    assert main(["flux", "run", "sensor_trend", "-p", "window=soon"]) == 2
    assert "parameter window (duration)" in capsys.readouterr().err
    assert main(["flux", "run", "sensor_trend", "-p", "window"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["flux", "query", "from(bucket: "]) == 1
    assert "InfluxDB refused running a Flux query" in capsys.readouterr().err
