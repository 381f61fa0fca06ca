"""An engineer's own Flux runs within a row limit and a time limit, on a real InfluxDB."""

from __future__ import annotations

import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from influxdb_client.client.influxdb_client import InfluxDBClient

from fleetwatch.settings import InfluxSettings
from stores.errors import StoreError
from stores.influx.flux_library import (
    FluxLibraryError,
    FluxTimeoutError,
    run_bounded_flux,
    run_flux,
)
from tests.support.history import heartbeat, tags, write
from tests.support.receivers import wait_until

T = datetime(2024, 3, 1, tzinfo=UTC)
S = timedelta(seconds=1)
POINTS = 50
# Rows made by Flux itself: no bucket needed, and as many as a test wants.
GENERATED = (
    'import "generate"\n'
    "generate.from(count: {count}, fn: (n) => n, "
    "start: 2021-01-01T00:00:00Z, stop: 2021-01-02T00:00:00Z)"
)
# One row, after seconds of computing (about 4 s here). InfluxDB drops a cancelled query
# from its controller at once, but a CPU-bound function such as this map finishes its work
# in the background: kept short, so the next tests do not share a busy influxd.
SLOW = (
    GENERATED.format(count=4_000_000)
    + ' |> map(fn: (r) => ({r with x: float(v: r._value) * 2.0})) |> sum(column: "x")'
)


@pytest.fixture
def stored(client: InfluxDBClient, influx_settings: InfluxSettings) -> str:
    """Fifty temperature points of one device, a second apart, in the test's bucket; the
    Flux reading them back."""
    bucket = influx_settings.influx_bucket
    write(client, bucket, (heartbeat(tags(1), T + k * S, temperature=k) for k in range(POINTS)))
    return (
        f'from(bucket: "{bucket}")'
        " |> range(start: 2024-03-01T00:00:00Z, stop: 2024-03-02T00:00:00Z)"
        ' |> filter(fn: (r) => r._measurement == "heartbeat" and r._field == "temperature")'
    )


def _executing(settings: InfluxSettings) -> int:
    """How many Flux queries InfluxDB is executing now (its query controller's gauge)."""
    with urllib.request.urlopen(f"{settings.influx_url}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("qc_executing_active{")
    )


def test_row_limit_truncates_and_says_so(influx_settings: InfluxSettings, stored: str) -> None:
    """Fifty stored points read with max_rows=10 give the first ten, flagged truncated; a
    limit of fifty or more gives all fifty, not truncated."""
    cut = run_bounded_flux(influx_settings, stored, timeout_s=30, max_rows=10)
    assert cut.truncated
    assert cut.frame.height == 10
    assert cut.frame["_value"].to_list() == [float(k) for k in range(10)]
    for limit in (POINTS, 1000):
        whole = run_bounded_flux(influx_settings, stored, timeout_s=30, max_rows=limit)
        assert not whole.truncated, limit
        assert whole.frame.height == POINTS


def test_bounded_rows_are_typed_like_run_flux(
    client: InfluxDBClient, influx_settings: InfluxSettings, stored: str
) -> None:
    """Within its limits the bounded read gives the frame run_flux gives, tables of different
    shapes stacked alike."""
    shapes = """
import "array"
array.from(rows: [{a: 1, t: 2024-01-01T00:00:00Z, ok: true}]) |> yield(name: "one")
array.from(rows: [{b: "x", f: 1.5}]) |> yield(name: "two")
"""
    for flux in (stored, shapes):
        bounded = run_bounded_flux(influx_settings, flux, timeout_s=30, max_rows=1000).frame
        whole = run_flux(client, flux)
        assert dict(bounded.schema) == dict(whole.schema)
        # The results of two yields may arrive in either order: compare the rows as sets.
        columns = sorted(whole.columns)
        rows = [sorted(frame.select(columns).rows(), key=repr) for frame in (bounded, whole)]
        assert rows[0] == rows[1]


def test_a_huge_answer_is_read_only_up_to_the_limit(influx_settings: InfluxSettings) -> None:
    """A million generated rows with max_rows=10: ten rows, truncated, and no wait for the
    rest."""
    result = run_bounded_flux(
        influx_settings, GENERATED.format(count=1_000_000), timeout_s=60, max_rows=10
    )
    assert result.truncated
    assert result.frame["_value"].to_list() == list(range(10))
    wait_until(lambda: _executing(influx_settings) == 0, 30, "InfluxDB to drop the query")


def test_timeout_cancels_a_slow_query(influx_settings: InfluxSettings) -> None:
    """A query computing for seconds fails after its 1 s limit with an error saying so, and
    InfluxDB's query controller drops it."""
    started = time.monotonic()
    with pytest.raises(FluxTimeoutError, match=r"^the query ran past 1 s; narrow its range$"):
        run_bounded_flux(influx_settings, SLOW, timeout_s=1, max_rows=10)
    assert time.monotonic() - started < 5
    wait_until(lambda: _executing(influx_settings) == 0, 10, "InfluxDB to drop the query")


def test_timeout_stops_a_query_that_keeps_sending_rows(influx_settings: InfluxSettings) -> None:
    """Rows arriving without pause (two million: a second or two before the first, several
    more to read them all) do not keep a query alive past its 5 s limit."""
    started = time.monotonic()
    with pytest.raises(FluxTimeoutError, match=r"ran past 5 s"):
        run_bounded_flux(
            influx_settings, GENERATED.format(count=2_000_000), timeout_s=5, max_rows=10_000_000
        )
    assert time.monotonic() - started < 8
    wait_until(lambda: _executing(influx_settings) == 0, 30, "InfluxDB to drop the query")


def test_limits_must_be_positive_and_bad_flux_is_a_store_error(
    influx_settings: InfluxSettings,
) -> None:
    """A zero limit is refused before anything runs; bad Flux fails as run_flux fails."""
    for limits in (
        {"timeout_s": 0, "max_rows": 10},
        {"timeout_s": float("inf"), "max_rows": 10},
        {"timeout_s": 1, "max_rows": 0},
    ):
        with pytest.raises(FluxLibraryError, match="limits must be positive"):
            run_bounded_flux(influx_settings, "this is not flux", **limits)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="InfluxDB refused running a Flux query"):
        run_bounded_flux(influx_settings, "this is not flux", timeout_s=10, max_rows=10)
