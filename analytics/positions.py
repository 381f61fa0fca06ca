"""Where the devices are and what state they are in: the fleet map's points.

:func:`device_map` puts a *devices frame* (``analytics.fleet.DEVICES_SCHEMA``), the devices'
positions (:data:`POSITIONS_SCHEMA`, ``analytics.load.load_positions``) and the open alarm
events (``analytics.alarms.EVENTS_SCHEMA``) together, one row per device with its map
state; :func:`map_summary` counts them and :func:`map_extent` says what area to draw.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

import polars as pl

from analytics._frames import DEVICE_COLUMNS, count_where, require_columns
from analytics.alarms import EVENTS_SCHEMA
from analytics.fleet import DEVICES_SCHEMA

__all__ = [
    "MAP_STATES",
    "POSITIONS_SCHEMA",
    "MapState",
    "device_map",
    "map_extent",
    "map_summary",
]

POSITIONS_SCHEMA: Final = pl.Schema(
    {
        "device_id": pl.Int64(),
        "latitude": pl.Float64(),
        "longitude": pl.Float64(),
        "location_desc": pl.String(),
    }
)
"""Each active device's installed position (``devices.latitude``/``longitude``, degrees;
null when nobody recorded it) and its description."""

MapState: TypeAlias = Literal["open alarm", "offline", "online"]
MAP_STATES: Final[tuple[MapState, ...]] = ("open alarm", "offline", "online")
"""A device's state on the map, the first that applies: it has an alarm event not resolved,
it is offline, it is online."""


def device_map(
    devices: pl.DataFrame, positions: pl.DataFrame, open_alarms: pl.DataFrame
) -> pl.DataFrame:
    """Where is each device, and does it need a look?

    One row per device of ``devices``: its identity (device_id, hostname, zone, country),
    ``kind``, ``is_online``, ``last_seen``, ``latitude``, ``longitude`` (null when unknown),
    ``location_desc``, ``open_alarms`` (its alarm events not resolved) and ``state``
    (:data:`MAP_STATES`); ordered by hostname.
    """
    require_columns(devices, DEVICES_SCHEMA, "devices")
    require_columns(positions, POSITIONS_SCHEMA, "positions")
    require_columns(open_alarms, EVENTS_SCHEMA, "open alarm events")
    counted = (
        open_alarms.filter(pl.col("resolved_at").is_null())
        .group_by("device_id")
        .agg(open_alarms=pl.len().cast(pl.Int64))
    )
    return (
        devices.select(*DEVICE_COLUMNS, "kind", "is_online", "last_seen")
        .join(positions.select(*POSITIONS_SCHEMA), on="device_id", how="left")
        .join(counted, on="device_id", how="left")
        .with_columns(pl.col("open_alarms").fill_null(0))
        .with_columns(
            state=pl.when(pl.col("open_alarms") > 0)
            .then(pl.lit("open alarm"))
            .when(~pl.col("is_online").fill_null(value=False))
            .then(pl.lit("offline"))
            .otherwise(pl.lit("online"))
        )
        .sort("hostname", nulls_last=True)
    )


def _placed() -> pl.Expr:
    return pl.col("latitude").is_not_null() & pl.col("longitude").is_not_null()


def map_summary(devices: pl.DataFrame) -> pl.DataFrame:
    """How many devices does the map show, and in which state? One row of
    :func:`device_map`'s counts: ``devices``, ``on_map``, ``no_position``, ``online``,
    ``offline`` and ``with_open_alarms`` (the last three over every device, placed or not)."""
    placed = count_where(_placed())
    return devices.select(
        devices=pl.len().cast(pl.Int64),
        on_map=placed,
        no_position=pl.len().cast(pl.Int64) - placed,
        online=count_where(pl.col("is_online")),
        offline=count_where(~pl.col("is_online").fill_null(value=False)),
        with_open_alarms=count_where(pl.col("open_alarms") > 0),
    )


def map_extent(
    devices: pl.DataFrame, *, margin: float = 0.25, min_span: float = 1.0
) -> tuple[float, float, float, float] | None:
    """The area to draw: (west, south, east, north) in degrees around the placed devices of
    :func:`device_map`, widened by ``margin`` of its size on each side and to at least
    ``min_span`` degrees (one device, or devices in one street, still get a readable map);
    None when no device is placed."""
    placed = devices.filter(_placed())
    if placed.is_empty():
        return None
    lon, lat = pl.col("longitude").cast(pl.Float64), pl.col("latitude").cast(pl.Float64)
    low_lon, high_lon, low_lat, high_lat = placed.select(
        lon.min().alias("west"),
        lon.max().alias("east"),
        lat.min().alias("south"),
        lat.max().alias("north"),
    ).row(0)
    west, east = _widen(low_lon, high_lon, 180.0, margin, min_span)
    south, north = _widen(low_lat, high_lat, 85.0, margin, min_span)  # Mercator has no poles
    return west, south, east, north


def _widen(
    low: float, high: float, limit: float, margin: float, min_span: float
) -> tuple[float, float]:
    span = high - low
    pad = max(span * margin, (min_span - span) / 2)
    return max(low - pad, -limit), min(high + pad, limit)
