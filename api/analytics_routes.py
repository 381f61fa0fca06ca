"""Reports for every signed-in person, computed by ``analytics`` as the dashboard computes
them: a device's time-weighted trend (the Trends and Telemetry pages' Flux, from InfluxDB)
and the storage the CDC saved (the Storage page's sums, from PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal

import psycopg
from fastapi import APIRouter, Query

from analytics import load, storage
from analytics.load import InfluxBuckets, TrendQuery
from analytics.selection import Period, ReportFilter
from api.deps import Caller, Conn, Influx, Reports
from api.errors import ApiError, ErrorResponse
from api.models import Savings, StorageSavings, Trend, TrendPoint, UtcTime
from api.params import ERRORS, Limit, Offset
from ingest.kinds.panel import PANEL
from stores.postgres import api_store, device_types

__all__ = ["router"]

router = APIRouter(responses=ERRORS | {502: {"model": ErrorResponse}}, tags=["analytics"])

MAX_WINDOWS: Final = 1000
"""The most windows one trend has (as the dashboard draws at most)."""
_EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST: Final = datetime(2262, 1, 1, tzinfo=UTC)  # InfluxDB: int64 nanoseconds since 1970
_DAY: Final = timedelta(days=1)


def _period(start: datetime | None, stop: datetime | None) -> Period:
    """[start, stop), the day up to now by default; 422 outside what the stores can hold."""
    stop = stop or datetime.now(UTC)
    start = start or stop - _DAY
    if start < _EARLIEST or stop > _LATEST:
        raise ApiError(422, f"times lie between {_EARLIEST:%Y-%m-%d} and {_LATEST:%Y-%m-%d}")
    return Period(start, stop)


def _trend_query(
    conn: psycopg.Connection[Any],
    device: dict[str, Any],
    metric: str,
    *,
    period: Period,
    every: timedelta,
    buckets: InfluxBuckets,
) -> TrendQuery:
    """The Flux of the device's trend: a panel's heartbeat field as the Trends page reads
    it, or a declared metric of a typed device as the Telemetry page does."""
    picked = ReportFilter(hostnames=(device["hostname"],))
    if device["kind"] == PANEL.name:
        known = [m.name for m in PANEL.numeric]
        if metric not in known:
            raise ApiError(422, f"a panel's trends are of {', '.join(known)}, not {metric!r}")
        return load.trend_query(buckets, metric, period, every, filters=picked, by=())
    declared = device_types.find(conn, device["device_type"]) if device["device_type"] else None
    if declared is None:
        raise ApiError(422, f"{device['hostname']} has no declared metrics to trend")
    known = [m.name for m in declared.metrics]
    if metric not in known:
        raise ApiError(422, f"{declared.name} declares {', '.join(known)}, not {metric!r}")
    return load.metric_trend_query(
        buckets, declared.name, metric, period, every, filters=picked, by=()
    )


@router.get("/trends/{hostname}")
def trend(
    *,
    conn: Conn,
    _: Caller,
    source: Influx,
    hostname: str,
    metric: Annotated[str, Query(max_length=63)],
    start: UtcTime | None = None,
    stop: UtcTime | None = None,
    every: Annotated[
        timedelta, Query(description="window width, an ISO 8601 duration (PT15M, PT1H, P1D)")
    ] = timedelta(hours=1),
) -> Trend:
    """The time-weighted mean of a panel's field or a typed device's metric per window over
    [start, stop) (the last day by default), offline time counting for nothing. Periods over
    two days read the hourly downsample and need whole-hour windows."""
    found = api_store.devices(conn, hostname=hostname, limit=1)
    if not found:
        raise ApiError(404, f"no active device {hostname!r}")
    period = _period(start, stop)
    if every < timedelta(seconds=1) or period.length / every > MAX_WINDOWS:
        raise ApiError(422, f"a window is at least 1 s, and at most {MAX_WINDOWS} fit the period")
    query = _trend_query(conn, found[0], metric, period=period, every=every, buckets=source.buckets)
    frame = load.run_trend(source.client, query, (), org=source.org)
    windows = frame.select(list(TrendPoint.model_fields)).iter_rows(named=True)
    points = [TrendPoint(**row) for row in windows]
    return Trend(
        hostname=hostname, metric=metric, start=period.start, stop=period.end, every=every,
        source=query.source, points=points,
    )  # fmt: skip


@router.get("/storage-savings")
def storage_savings(
    *,
    _: Caller,
    engine: Reports,
    start: UtcTime | None = None,
    stop: UtcTime | None = None,
    by: Literal["day", "kind", "device"] | None = None,
    zone: int | None = None,
    country: Annotated[str | None, Query(max_length=3)] = None,
    kind: Annotated[str | None, Query(max_length=20)] = None,
    device_type: Annotated[str | None, Query(max_length=100)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> StorageSavings:
    """Heartbeats (and telemetry readings) received against points written to InfluxDB by
    the CDC, over the hours starting in [start, stop) (the last day by default), of the
    devices the filters leave: the total, and by UTC day, device kind or device."""
    period = _period(start, stop)
    filters = ReportFilter(zone=zone, country=country, kind=kind, device_type=device_type)
    counts = load.load_heartbeat_totals(
        engine, period, filters, by="day" if by in (None, "day") else "device"
    )
    rows = storage.cdc_savings(counts, by).slice(offset, limit) if by else None
    return StorageSavings(
        start=period.start, stop=period.end, bytes_per_point=storage.heartbeat_point_bytes(),
        total=Savings(**storage.cdc_savings(counts).row(0, named=True)), by=by,
        items=[Savings(**r) for r in rows.iter_rows(named=True)] if rows is not None else [],
        limit=limit, offset=offset,
    )  # fmt: skip
