"""What a test's InfluxDB bucket holds, read back with Flux."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fleetwatch.settings import InfluxSettings
from stores.influx import make_client


def stored_points(
    influx: InfluxSettings, measurement: str, *, hostname: str | None = None
) -> list[dict[str, Any]]:
    """Every point of ``measurement`` (of one ``hostname`` if given), fields pivoted, each
    series oldest first.

    Points are timed by plausible device clocks, which may run a little ahead of the server's
    (the fake devices' clock ticks at least 1 ms per message): the range reaches past now.
    """
    host = f' and r.hostname == "{hostname}"' if hostname is not None else ""
    flux = f"""
from(bucket: "{influx.influx_bucket}")
  |> range(start: -7d, stop: 1h)
  |> filter(fn: (r) => r._measurement == "{measurement}"{host})
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
  |> sort(columns: ["_time"])
"""
    with make_client(influx) as client:
        tables = client.query_api().query(flux)
    return [record.values for table in tables for record in table.records]


def count_points(influx: InfluxSettings, measurements: Iterable[str]) -> int:
    """How many CDC points the measurements hold: each has exactly one change_type field."""
    wanted = " or ".join(f'r._measurement == "{m}"' for m in measurements)
    flux = f"""
from(bucket: "{influx.influx_bucket}")
  |> range(start: -7d, stop: 1h)
  |> filter(fn: (r) => ({wanted}) and r._field == "change_type")
  |> group()
  |> count()
"""
    with make_client(influx) as client:
        tables = client.query_api().query(flux)
    return sum(int(record.get_value()) for table in tables for record in table.records)
