"""Fleet statistics: how many devices, where, in which state, and how healthy.

Every function reads a *devices frame* (:data:`DEVICES_SCHEMA`): one row per device with its
current status, as ``analytics.load.load_devices`` builds it from ``devices`` and
``device_status``, plus ``disconnects``, the disconnections and liveness timeouts of the
report's period from ``device_connection_log``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final, Literal, TypeAlias, get_args

import polars as pl

from analytics._frames import DEVICE_COLUMNS, UTC_TIME, count_where, require_columns, share
from analytics.selection import AnalyticsError

__all__ = [
    "DEVICES_SCHEMA",
    "STALE_AFTER",
    "WEAK_RSSI_DBM",
    "FleetDimension",
    "device_health",
    "fleet_breakdown",
    "fleet_summary",
    "stale_devices",
    "unsynced_devices",
]

DEVICES_SCHEMA: Final = pl.Schema(
    {
        "device_id": pl.Int64(),
        "hostname": pl.String(),
        "zone": pl.Int64(),
        "country": pl.String(),
        "firmware_version": pl.String(),
        "is_online": pl.Boolean(),
        "device_state": pl.String(),
        "last_seen": UTC_TIME,
        "device_synced": pl.Boolean(),
        "sync_attempts": pl.Int64(),
        "free_heap": pl.Int64(),
        "min_heap": pl.Int64(),
        "rssi": pl.Int64(),
        "error_flags": pl.Int64(),
        "error_count": pl.Int64(),
        "boot_count": pl.Int64(),
        "wifi_disconnects": pl.Int64(),
        "mqtt_disconnects": pl.Int64(),
        "disconnects": pl.Int64(),
        "kind": pl.String(),
        "device_type": pl.String(),
        "transport": pl.String(),
    }
)
"""One row per device. ``boot_count``, ``wifi_disconnects``, ``mqtt_disconnects`` and
``error_count`` are the device's lifetime counters; ``disconnects`` counts the period's
``disconnected`` and ``timeout`` rows of the connection log; ``kind`` is the declared kind
(``panel``, ``telemetry``) and ``device_type`` the type of a telemetry device (null for
panels); ``transport`` how it connects (``mqtt``, ``websocket``). Panel-only columns are
null for other kinds."""

WEAK_RSSI_DBM: Final = -80
"""A WiFi signal below this (dBm) is weak."""
STALE_AFTER: Final = timedelta(hours=1)
"""A device not heard from for this long is stale."""

FleetDimension: TypeAlias = Literal[
    "kind", "device_type", "transport", "device_state", "zone", "country", "firmware_version"
]
ID_SYNC_KINDS: Final = frozenset({"panel"})
"""The kinds whose devices take a database id from fleetwatch (SET_DEVICE_ID)."""


def _checked(devices: pl.DataFrame) -> pl.DataFrame:
    require_columns(devices, DEVICES_SCHEMA, "devices")
    return devices


def _is_stale(now: datetime, older_than: timedelta) -> pl.Expr:
    return pl.col("last_seen").is_null() | (pl.col("last_seen") < now - older_than)


def _weak(weak_rssi_dbm: int) -> pl.Expr:
    return pl.col("rssi") < weak_rssi_dbm


def fleet_summary(
    devices: pl.DataFrame,
    *,
    now: datetime,
    stale_after: timedelta = STALE_AFTER,
    weak_rssi_dbm: int = WEAK_RSSI_DBM,
) -> pl.DataFrame:
    """How big is the fleet, how much of it is online, and how healthy is it? One row.

    Columns: ``devices``, ``online``, ``offline``, ``online_share`` (0-1, null for no
    devices), ``not_synced`` (device id not confirmed), ``stale`` (not heard from for
    ``stale_after``, or never), ``weak_rssi`` (below ``weak_rssi_dbm``), ``with_errors``
    (a non-zero error bitmap), ``min_free_heap`` (the lowest heap low-water mark of the
    fleet, bytes), ``reboots`` (sum of the devices' boot counters) and ``disconnects`` (in the
    period).
    """
    online = count_where(pl.col("is_online"))
    return _checked(devices).select(
        devices=pl.len().cast(pl.Int64),
        online=online,
        offline=pl.len().cast(pl.Int64) - online,
        online_share=share(online, pl.len()),
        not_synced=count_where(~pl.col("device_synced") & pl.col("kind").is_in(ID_SYNC_KINDS)),
        stale=count_where(_is_stale(now, stale_after)),
        weak_rssi=count_where(_weak(weak_rssi_dbm)),
        with_errors=count_where(pl.col("error_flags") != 0),
        min_free_heap=pl.col("min_heap").min(),
        reboots=pl.col("boot_count").sum().cast(pl.Int64),
        disconnects=pl.col("disconnects").sum().cast(pl.Int64),
    )


def fleet_breakdown(devices: pl.DataFrame, by: FleetDimension) -> pl.DataFrame:
    """How are the devices spread over states, zones, countries or firmware versions?

    One row per value of ``by`` (null included, as its own row): ``devices``, ``online``,
    ``offline`` and ``share`` of the fleet (0-1); most devices first.
    """
    if by not in get_args(FleetDimension):
        raise AnalyticsError(f"cannot break the fleet down by {by!r}")
    online = count_where(pl.col("is_online"))
    total = pl.len().cast(pl.Int64)
    return (
        _checked(devices)
        .group_by(by)
        .agg(devices=total, online=online, offline=total - online)
        .with_columns(share=share(pl.col("devices"), pl.col("devices").sum()))
        .sort(["devices", by], descending=[True, False], nulls_last=True)
    )


def unsynced_devices(devices: pl.DataFrame) -> pl.DataFrame:
    """Which devices have not confirmed the database id fleetwatch gave them?

    Their identity, ``sync_attempts`` made so far and ``last_seen``; most attempts first.
    """
    return (
        _checked(devices)
        .filter(
            ~pl.col("device_synced").fill_null(value=False) & pl.col("kind").is_in(ID_SYNC_KINDS)
        )
        .select(*DEVICE_COLUMNS, "sync_attempts", "is_online", "last_seen")
        .sort(["sync_attempts", "hostname"], descending=[True, False])
    )


def device_health(devices: pl.DataFrame, *, weak_rssi_dbm: int = WEAK_RSSI_DBM) -> pl.DataFrame:
    """Which devices are unwell: low memory, weak signal, error flags, reboots, disconnects?

    One row per device with ``min_heap`` and ``free_heap`` (bytes), ``rssi``, ``weak_rssi``,
    ``error_flags`` and ``error_bits`` (how many flags are set), the lifetime
    ``error_count``, ``boot_count``, ``wifi_disconnects`` and ``mqtt_disconnects``, the
    period's ``disconnects``, and ``problems``: how many of weak signal, error flags and
    disconnections in the period apply. Most problems first, then the lowest heap.
    """
    weak = _weak(weak_rssi_dbm).fill_null(value=False)
    flagged = (pl.col("error_flags") != 0).fill_null(value=False)
    dropped = (pl.col("disconnects") > 0).fill_null(value=False)
    return (
        _checked(devices)
        .select(
            *DEVICE_COLUMNS,
            "is_online",
            "min_heap",
            "free_heap",
            "rssi",
            weak.alias("weak_rssi"),
            "error_flags",
            pl.col("error_flags").bitwise_count_ones().cast(pl.Int64).alias("error_bits"),
            "error_count",
            "boot_count",
            "wifi_disconnects",
            "mqtt_disconnects",
            "disconnects",
            (weak.cast(pl.Int64) + flagged.cast(pl.Int64) + dropped.cast(pl.Int64)).alias(
                "problems"
            ),
        )
        .sort(
            ["problems", "min_heap", "hostname"], descending=[True, False, False], nulls_last=True
        )
    )


def stale_devices(
    devices: pl.DataFrame, *, now: datetime, older_than: timedelta = STALE_AFTER
) -> pl.DataFrame:
    """Which devices have not been heard from for ``older_than`` (or ever)?

    Their identity, ``is_online``, ``last_seen`` and ``silent_seconds`` (null when never
    seen); never-seen devices first, then the longest silent.
    """
    return (
        _checked(devices)
        .filter(_is_stale(now, older_than))
        .select(
            *DEVICE_COLUMNS,
            "is_online",
            "device_state",
            "last_seen",
            (
                (pl.lit(now, dtype=UTC_TIME) - pl.col("last_seen")).dt.total_microseconds() / 1e6
            ).alias("silent_seconds"),
        )
        .sort(["last_seen", "hostname"], nulls_last=False)
    )
