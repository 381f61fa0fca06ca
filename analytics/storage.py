"""CDC storage savings: heartbeats received against points stored in InfluxDB.

Every function reads a *counts frame* (:data:`COUNTS_SCHEMA`): rows of
``heartbeat_counts`` (per device and hour, heartbeats received and points written) with
their device's identity, as ``analytics.load.load_heartbeat_counts`` builds it.

Bytes are line-protocol bytes: what ingest sends to InfluxDB for a point, and what storing
every heartbeat would have sent. :func:`heartbeat_point_bytes` measures it on the points
ingest writes (stores.influx.points), so it follows the schema instead of a guess. InfluxDB's
TSM engine compresses on disk, so the bytes on disk are fewer; the reduction in percent is
the same, since each point costs about the same.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Final, Literal, TypeAlias

import polars as pl

from analytics._frames import DEVICE_COLUMNS, UTC_TIME, require_columns, share
from analytics.selection import AnalyticsError
from stores.influx.points import DeviceTags, HeartbeatPoint, heartbeat_line

__all__ = ["COUNTS_SCHEMA", "StorageDimension", "cdc_savings", "heartbeat_point_bytes"]

COUNTS_SCHEMA: Final = pl.Schema(
    {
        "device_id": pl.Int64(),
        "hostname": pl.String(),
        "zone": pl.Int64(),
        "country": pl.String(),
        "hour": UTC_TIME,
        "received": pl.Int64(),
        "written": pl.Int64(),
        "kind": pl.String(),
    }
)

StorageDimension: TypeAlias = Literal["device", "day", "kind"]


@cache
def heartbeat_point_bytes() -> float:
    """Mean line-protocol size in bytes of a heartbeat point as ingest writes it.

    Measured on one point of each common kind (PERIODIC, SENSOR_DATA with its ``changes``,
    ALARM) for a device with a full-length hostname (``ESG_ALARM_0001``), zone, country,
    uptime and device clock: about 345 bytes with the current schema.
    """
    when = datetime(2025, 1, 1, 12, tzinfo=UTC)
    tags = DeviceTags(device_id=12345, hostname="ESG_ALARM_0001", zone=3, country="ES")
    kinds: tuple[tuple[str, dict[str, object], bool], ...] = (
        ("PERIODIC", {"periodic": True}, False),
        ("SENSOR_DATA", {"temperature": {"old": 21.5, "new": 22.0, "diff": 0.5}}, False),
        ("ALARM", {"panic1": {"old": False, "new": True}}, True),
    )
    sizes = [
        len(
            heartbeat_line(
                HeartbeatPoint(
                    tags=tags,
                    time=when,
                    temperature=22.0,
                    humidity=45.5,
                    fan_pwm_duty=30,
                    panic1=panic,
                    panic2=False,
                    box_sw=False,
                    siren=False,
                    turret=False,
                    is_online=True,
                    device_state="NORMAL",
                    uptime=86_400,
                    change_type=change_type,
                    changes=changes,
                    device_time=when - timedelta(milliseconds=250),
                )
            ).encode()
        )
        for change_type, changes, panic in kinds
    ]
    return statistics.fmean(sizes)


def cdc_savings(
    counts: pl.DataFrame,
    by: StorageDimension | None = None,
    *,
    bytes_per_point: float | None = None,
) -> pl.DataFrame:
    """How much did the CDC save: heartbeats received against points stored?

    Overall (one row, zeros for no data), per device (device_id, hostname, zone, country),
    per ``day`` (UTC) or per ``kind`` of device (panel, telemetry): ``received``,
    ``written``, ``saved`` (received - written),
    ``reduction`` (saved / received, 0-1, null for nothing received), and the same in bytes
    (``received_bytes`` had every heartbeat been stored, ``written_bytes``,
    ``saved_bytes``) at ``bytes_per_point`` (:func:`heartbeat_point_bytes` when None).
    """
    require_columns(counts, COUNTS_SCHEMA, "heartbeat counts")
    size = heartbeat_point_bytes() if bytes_per_point is None else bytes_per_point
    if not size > 0:
        raise AnalyticsError(f"bytes_per_point must be positive, got {bytes_per_point!r}")
    if by not in (None, "device", "day", "kind"):
        raise AnalyticsError(f"cannot group storage savings by {by!r}")
    keys = {None: [], "device": list(DEVICE_COLUMNS), "day": ["day"], "kind": ["kind"]}[by]
    sums = [
        pl.col("received").sum().cast(pl.Int64),
        pl.col("written").sum().cast(pl.Int64),
    ]
    prepared = counts.with_columns(day=pl.col("hour").dt.truncate("1d"))
    totals = (
        prepared.select(sums)
        if not keys
        else prepared.group_by(keys).agg(sums).sort(keys, nulls_last=True)
    )
    return totals.with_columns(
        saved=pl.col("received") - pl.col("written"),
        reduction=share(pl.col("received") - pl.col("written"), pl.col("received")),
        received_bytes=(pl.col("received") * size).round().cast(pl.Int64),
        written_bytes=(pl.col("written") * size).round().cast(pl.Int64),
        saved_bytes=((pl.col("received") - pl.col("written")) * size).round().cast(pl.Int64),
    )
