"""The Flux library: parsing the query files, rendering them safely, running them for real."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS

from analytics.trends import combine, time_weighted
from fleetwatch.settings import InfluxSettings
from stores.errors import StoreError
from stores.influx.flux_library import (
    FluxLibraryError,
    flux_duration,
    flux_string,
    list_queries,
    load_query,
    run_flux,
)
from tests.support.history import alarm, heartbeat, tags, write

T = datetime(2024, 1, 1, tzinfo=UTC)
S = timedelta(seconds=1)
M = timedelta(minutes=1)
QUERIES = (
    "alarm_points",
    "cdc_points_per_day",
    "device_metric_series",
    "device_series",
    "fleet_hourly",
    "group_trend",
    "history_start",
    "metric_hourly_trend",
    "sensor_trend",
    "stored_points_per_day",
)
A, B = tags(1), tags(2, country="PT")


# --- the files -----------------------------------------------------------------------------


def test_library_lists_the_queries_but_not_function_libraries() -> None:
    """Every query file is listed with a description; hourly_stats.flux (functions) is not."""
    queries = {query.name: query for query in list_queries()}
    assert tuple(sorted(queries)) == QUERIES
    for query in queries.values():
        assert query.description.endswith(".")
        assert query.params, query.name
        assert all(param.description for param in query.params)


def test_parameters_are_typed_with_defaults() -> None:
    """The header declares each parameter's type, default and whether it is required."""
    trend = load_query("sensor_trend")
    assert [(p.name, p.type, p.default) for p in trend.params[:4]] == [
        ("bucket", "string", None),
        ("start", "time", "-24h"),
        ("stop", "time", "now"),
        ("window", "duration", "1h"),
    ]
    assert trend.param("bucket").required
    assert trend.param("hostnames").default == ""
    assert "look for the value in force" in trend.param("carry").description


def test_render_puts_typed_literals_after_the_imports() -> None:
    """Values become a params record of Flux literals; relative times are made absolute."""
    now = datetime(2025, 5, 1, 12, 30, tzinfo=UTC)
    flux = load_query("sensor_trend").render(
        {"bucket": "raw", "start": "-2h", "window": timedelta(minutes=15), "zone": "3"}, now=now
    )
    imports_end = flux.index('import "strings"')
    record = flux.index("params = {")
    assert imports_end < record < flux.index("from(bucket: params.bucket)")
    assert '    bucket: "raw",\n' in flux
    assert "    start: 2025-05-01T10:30:00.000000Z,\n" in flux
    assert "    stop: 2025-05-01T12:30:00.000000Z,\n" in flux
    assert "    window: 15m,\n" in flux
    assert '    zone: "3",\n' in flux
    assert "    carry: 10m,\n" in flux


def test_values_are_escaped_or_refused() -> None:
    """Strings cannot break out of their literal; malformed values are refused by type."""
    assert flux_string('a"b\\c${d}\n') == '"a\\"b\\\\c\\${d}\\n"'
    query = load_query("device_series")
    hostile = query.render({"bucket": "b", "hostname": 'x") |> drop(columns: ["_value"]) //'})
    assert 'hostname: "x\\") |> drop(columns: [\\"_value\\"]) //",' in hostile
    for name, value, message in (
        ("start", "yesterday", "not a time"),
        ("start", datetime(2024, 1, 1), "timezone-aware"),  # noqa: DTZ001 - the point
        ("hostname", 42, "expected text"),
        ("hostname", "a\x00b", "control character"),
    ):
        with pytest.raises(FluxLibraryError, match=message):
            query.render({"bucket": "b", "hostname": "h", name: value})
    trend = load_query("sensor_trend")
    for value in ("1 hour", "-5m", "0s", "5", "1h; drop"):
        with pytest.raises(FluxLibraryError, match="window"):
            trend.render({"bucket": "b", "window": value})


def test_every_type_renders() -> None:
    """Times (RFC 3339, dates, relative), durations, booleans and numbers take their form."""
    per_day = load_query("cdc_points_per_day")
    now = datetime(2025, 1, 10, tzinfo=UTC)
    flux = per_day.render(
        {
            "bucket": "b",
            "start": date(2025, 1, 1),
            "stop": "2025-01-05T06:00:00+02:00",
            "per_device": "yes",
        },
        now=now,
    )
    assert "start: 2025-01-01T00:00:00.000000Z," in flux
    assert "stop: 2025-01-05T04:00:00.000000Z," in flux
    assert "per_device: true," in flux
    assert flux_duration(timedelta(hours=36)) == "36h"
    assert flux_duration(timedelta(milliseconds=1500)) == "1500000us"
    assert flux_duration("1h30m") == "1h30m"
    with pytest.raises(FluxLibraryError, match="true or false"):
        per_day.render({"bucket": "b", "per_device": "maybe"})


def test_unknown_and_missing_parameters_are_named() -> None:
    """An unknown parameter lists the valid ones; a missing required one is named."""
    query = load_query("device_series")
    with pytest.raises(FluxLibraryError, match=r"no parameter 'host'.*hostname"):
        query.render({"bucket": "b", "host": "x"})
    with pytest.raises(FluxLibraryError, match="needs a value for: hostname"):
        query.render({"bucket": "b"})
    with pytest.raises(FluxLibraryError, match=r"no Flux query 'nope'.*sensor_trend"):
        load_query("nope")
    with pytest.raises(FluxLibraryError, match="no Flux query"):
        load_query("../flux/sensor_trend")


def test_malformed_query_files_are_refused(tmp_path: Path) -> None:
    """A body using an undeclared parameter, or assigning params itself, is an error."""
    (tmp_path / "bad.flux").write_text(
        "// Answers something.\n//\n// Parameters:\n//   bucket  string  the bucket\n\n"
        "from(bucket: params.bucket) |> range(start: params.start)\n"
    )
    with pytest.raises(FluxLibraryError, match="undeclared parameters: \\['start'\\]"):
        load_query("bad", tmp_path)
    (tmp_path / "bad.flux").write_text(
        "// Answers something.\n//\n// Parameters:\n//   bucket  text  the bucket\n"
    )
    with pytest.raises(FluxLibraryError, match="cannot read parameter line"):
        load_query("bad", tmp_path)


# --- running them --------------------------------------------------------------------------


@pytest.fixture
def bucket(influx_settings: InfluxSettings) -> str:
    """The test's own, empty bucket."""
    return influx_settings.influx_bucket


@pytest.fixture
def series(client: InfluxDBClient, bucket: str) -> pl.DataFrame:
    """Two devices' CDC points written to the bucket, returned as a points frame.

    A: 10 from a minute before T, 20 from T+30 s, 30 from T+5 min.
    B: 0 from before T, offline at T+90 s, back with 4 at T+270 s.
    """
    rows = [
        (A, -60, 10.0, True),
        (A, 30, 20.0, True),
        (A, 300, 30.0, True),
        (B, -200, 0.0, True),
        (B, 90, 0.0, False),
        (B, 270, 4.0, True),
    ]
    write(
        client,
        bucket,
        [heartbeat(t, T + s * S, temperature=v, online=live) for t, s, v, live in rows],
    )
    return pl.DataFrame(
        [(t.hostname, T + s * S, v, live) for t, s, v, live in rows],
        schema={
            "hostname": pl.String,
            "time": pl.Datetime("us", "UTC"),
            "value": pl.Float64,
            "live": pl.Boolean,
        },
        orient="row",
    )


def _trend(client: InfluxDBClient, **params: object) -> pl.DataFrame:
    flux = load_query("sensor_trend").render(params)  # type: ignore[arg-type]
    frame = run_flux(client, flux)
    return frame.sort([c for c in ("hostname", "_time") if c in frame.columns])


def test_every_query_runs_on_an_empty_bucket(client: InfluxDBClient, bucket: str) -> None:
    """Each query compiles and runs with its defaults; an empty bucket gives no rows."""
    for query in list_queries():
        required = {"device_series": {"hostname": "ESG_ALARM_0001"}}
        required["device_metric_series"] = {"device_id": "1"}
        required["metric_hourly_trend"] = {"metric": "vibration"}
        values = required.get(query.name, {})
        target = "bucket" if any(p.name == "bucket" for p in query.params) else "hourly_bucket"
        frame = run_flux(client, query.render({target: bucket, **values}))
        assert frame.is_empty(), query.name


@pytest.mark.parametrize("start", [T, T + 30 * S], ids=["aligned", "mid-window"])
def test_sensor_trend_matches_the_step_function(
    client: InfluxDBClient, bucket: str, series: pl.DataFrame, start: datetime
) -> None:
    """Per device and window, Flux gives exactly the Polars step-function reference."""
    stop = T + 10 * M
    flux = _trend(client, bucket=bucket, start=start, stop=stop, window="1m")
    expected = time_weighted(series, start=start, stop=stop, every=M, by=("hostname",))
    assert flux.select("hostname", "_time", "_value", "covered_seconds").rows() == expected.rows()
    assert set(flux["devices"].to_list()) == {1}
    first_a = flux.filter(hostname=A.hostname).row(0, named=True)
    assert first_a["_value"] == (15.0 if start == T else 20.0)  # carried 10, then 20


def test_sensor_trend_combines_and_filters_groups(
    client: InfluxDBClient, bucket: str, series: pl.DataFrame
) -> None:
    """by="" merges the devices weighting covered time; filters select devices by tag."""
    stop = T + 6 * M
    merged = _trend(client, bucket=bucket, start=T, stop=stop, window="1m", by="")
    reference = combine(time_weighted(series, start=T, stop=stop, every=M, by=("hostname",)))
    assert merged.select("_time", "_value", "covered_seconds", "devices").rows() == [
        (t, pytest.approx(v), c, d) for t, v, c, d in reference.rows()
    ]
    for selection in (
        {"country": "PT"},
        {"hostnames": B.hostname},
        {"hostnames": "X,ESG_ALARM_0002"},
    ):
        only_b = _trend(client, bucket=bucket, start=T, stop=stop, window="1m", **selection)
        assert set(only_b["hostname"].to_list()) == {B.hostname}, selection
    by_country = _trend(client, bucket=bucket, start=T, stop=stop, window="1m", by="country")
    assert set(by_country.columns) >= {"country", "_value", "devices"}
    assert "hostname" not in by_country.columns
    nobody = _trend(client, bucket=bucket, start=T, stop=stop, window="1m", zone="9")
    assert nobody.is_empty()


def test_naive_flux_averages_are_wrong_for_a_step_series(
    client: InfluxDBClient, bucket: str, series: pl.DataFrame
) -> None:
    """Why sensor_trend.flux exists: timeWeightedAvg + fill and mean() disagree with the truth.

    Device A holds 10, then 20 from T+30 s, then 30 from T+5 min. In the minute windows,
    aggregateWindow(fn: timeWeightedAvg) gives 0 (not null, so fill(usePrevious) cannot
    help) for minutes without a point and does not carry the previous value into a window.
    """
    start, stop = (moment.strftime("%Y-%m-%dT%H:%M:%SZ") for moment in (T, T + 10 * M))
    naive = run_flux(
        client,
        f"""
from(bucket: "{bucket}")
  |> range(start: {start}, stop: {stop})
  |> filter(fn: (r) => r._measurement == "heartbeat" and r._field == "temperature")
  |> filter(fn: (r) => r.hostname == "{A.hostname}")
  |> aggregateWindow(every: 1m, fn: (tables=<-, column) => tables |> timeWeightedAvg(unit: 1s),
                     createEmpty: true, timeSrc: "_start")
  |> fill(usePrevious: true)
""",
    )
    right = _trend(
        client, bucket=bucket, start=T, stop=T + 10 * M, window="1m", hostnames=A.hostname
    )
    assert right["_value"].to_list() == [15.0, 20.0, 20.0, 20.0, 20.0, 30.0, 30.0, 30.0, 30.0, 30.0]
    assert naive["_value"].to_list() == [20.0, 0.0, 0.0, 0.0, 0.0, 30.0, 0.0, 0.0, 0.0, 0.0]


def test_device_series_alarm_points_and_points_per_day(
    client: InfluxDBClient, bucket: str, series: pl.DataFrame
) -> None:
    """Raw points of one device, alarm points of a filter, and points counted per day."""
    write(client, bucket, [alarm(B, T + 5 * S, 1), alarm(A, T + 9 * S, 1, alarm_type="TAMPER")])
    points = run_flux(
        client,
        load_query("device_series").render(
            {"bucket": bucket, "hostname": A.hostname, "start": T - M, "stop": T + M}
        ),
    )
    assert points.select("_time", "temperature", "change_type", "is_online").rows() == [
        (T - M, 10.0, "PERIODIC", True),
        (T + 30 * S, 20.0, "PERIODIC", True),
    ]
    alarms = run_flux(
        client,
        load_query("alarm_points").render(
            {"bucket": bucket, "start": T - M, "stop": T + M, "country": "PT"}
        ),
    )
    assert alarms.select("hostname", "alarm_type", "event_state", "sequence").rows() == [
        (B.hostname, "PANIC1", "ACTIVE", 1)
    ]
    per_day = run_flux(
        client,
        load_query("cdc_points_per_day").render(
            {"bucket": bucket, "start": T - timedelta(days=1), "stop": T + timedelta(days=1)}
        ),
    )
    assert per_day.select("_time", "change_type", "points").rows() == [
        (T - timedelta(days=1), "PERIODIC", 2),  # the two points before midnight
        (T, "PERIODIC", 4),
    ]


def test_fleet_hourly_weights_hours_by_covered_time(client: InfluxDBClient, bucket: str) -> None:
    """Hours combine into days weighted by their covered seconds, per device and together."""
    lines = [
        f"device_hourly_stats,country=ES,device_id=1,hostname=A,zone=3 "
        f"avg_temperature={value},covered_seconds={covered} {int((T + hours * 60 * M).timestamp())}"
        for hours, value, covered in ((0, 10.0, 3600.0), (1, 20.0, 1800.0), (25, 5.0, 3600.0))
    ]
    lines.append(
        "device_hourly_stats,country=PT,device_id=2,hostname=B,zone=3 "
        f"avg_temperature=40.0,covered_seconds=3600.0 {int((T + 60 * M).timestamp())}"
    )
    client.write_api(write_options=SYNCHRONOUS).write(
        bucket=bucket, record=lines, write_precision="s"
    )
    render = load_query("fleet_hourly").render
    days = {"hourly_bucket": bucket, "start": T, "stop": T + timedelta(days=2)}
    per_device = run_flux(client, render(days)).sort("hostname", "_time")
    assert per_device.select("hostname", "_time", "_value", "covered_seconds").rows() == [
        ("A", T, pytest.approx(40 / 3), 5400.0),
        ("A", T + timedelta(days=1), 5.0, 3600.0),
        ("B", T, 40.0, 3600.0),
    ]
    fleet = run_flux(client, render({**days, "by": ""})).sort("_time")
    assert fleet.select("_time", "_value", "devices").rows() == [
        (T, pytest.approx(24.0), 2),
        (T + timedelta(days=1), 5.0, 1),
    ]


def test_run_flux_types_columns_and_reports_errors(client: InfluxDBClient, bucket: str) -> None:
    """Tables of different shapes stack into one typed frame; bad Flux is a StoreError."""
    frame = run_flux(
        client,
        """
import "array"
array.from(rows: [{a: 1, t: 2024-01-01T00:00:00Z, ok: true}]) |> yield(name: "one")
array.from(rows: [{b: "x", f: 1.5}]) |> yield(name: "two")
""",
    )
    # The two results may arrive in either order: compare the columns, not their order.
    assert dict(frame.schema) == {
        "a": pl.Int64,
        "t": pl.Datetime("us", "UTC"),
        "ok": pl.Boolean,
        "b": pl.String,
        "f": pl.Float64,
    }
    assert frame.height == 2
    with pytest.raises(StoreError, match="InfluxDB refused running a Flux query"):
        run_flux(client, 'from(bucket: "nope-' + bucket + '") |> range(start: -1h)')
    with pytest.raises(StoreError):
        run_flux(client, "this is not flux")
