"""The InfluxDB layer talks to a real InfluxDB 2.x."""

from __future__ import annotations

from datetime import UTC, datetime

from influxdb_client import Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

from fleetwatch.settings import InfluxSettings
from stores.influx import make_client, server_version


def test_point_written_is_read_back_with_flux(influx_settings: InfluxSettings) -> None:
    """A point written with influxdb-client comes back from a Flux query with its values."""
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    point = (
        Point("heartbeat")
        .tag("device_id", "42")
        .field("temperature", 23.25)
        .field("panic1", True)
        .time(when, WritePrecision.MS)
    )
    flux = f"""
from(bucket: "{influx_settings.influx_bucket}")
  |> range(start: 2026-01-01T00:00:00Z, stop: 2026-01-03T00:00:00Z)
  |> filter(fn: (r) => r._measurement == "heartbeat" and r.device_id == "42")
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
"""
    with make_client(influx_settings) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=influx_settings.influx_bucket, record=point
        )
        tables = client.query_api().query(flux)
    records = [record.values for table in tables for record in table.records]
    assert len(records) == 1
    assert records[0]["_time"] == when
    assert records[0]["temperature"] == 23.25
    assert records[0]["panic1"] is True


def test_server_reports_a_2x_version(influx_settings: InfluxSettings) -> None:
    """The health probe reports an InfluxDB 2.x server."""
    with make_client(influx_settings) as client:
        assert server_version(client).lstrip("v").startswith("2.")
