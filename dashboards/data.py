"""Cached loads for the pages: the stores' connections and one query per report.

Connections are Streamlit *resources* (``st.cache_resource``): one SQLAlchemy engine and one
InfluxDB client per set of credentials, shared by every session and closed when the cache is
cleared. Report frames are cached *data* (``st.cache_data``) for :data:`TTL`: the key is the
whole :class:`Sources` (so two databases or buckets never share an entry), the period and the
filter; :func:`dashboards.filters.sidebar` rounds the period to the minute so reruns hit the
cache. Nothing here runs a query per device.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

import polars as pl
import psycopg
import streamlit as st
from influxdb_client.client.influxdb_client import InfluxDBClient
from sqlalchemy import Engine

from analytics import load
from analytics.load import InfluxBuckets, TrendQuery
from analytics.selection import AnalyticsError, Period, ReportFilter
from fleetwatch.settings import (
    ENV_PREFIX,
    DashboardSettings,
    InfluxSettings,
    PostgresSettings,
    RetentionSettings,
    SettingsError,
)
from fleetwatch.settings import load as load_settings
from stores.errors import StoreError, StoreUnavailableError
from stores.influx import make_client
from stores.influx.flux_library import (
    FluxLibraryError,
    FluxResult,
    FluxTimeoutError,
    run_bounded_flux,
)
from stores.postgres import commands_store, make_engine
from stores.postgres.commands_store import CommandRow

__all__ = [
    "TTL",
    "Sources",
    "active_alarms",
    "alarm_events",
    "clear",
    "commands",
    "connection_log",
    "dead_letters",
    "device",
    "device_history",
    "devices",
    "directory",
    "heartbeat_totals",
    "history_start",
    "points_per_day",
    "positions",
    "rule_events",
    "run_query",
    "shown_errors",
    "sources",
    "trend",
]

TTL: Final = timedelta(minutes=1)
"""How long a loaded report is reused before it is queried again."""
_DIRECTORY_TTL: Final = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Sources:
    """Where the dashboard reads, with its (read-only) credentials; the key of every cache.

    Attributes:
        database_url: SQLAlchemy URL of PostgreSQL.
        influx_url: InfluxDB URL.
        influx_token: InfluxDB token.
        influx_org: InfluxDB organisation.
        buckets: the raw and hourly heartbeat buckets.
    """

    database_url: str
    influx_url: str
    influx_token: str
    influx_org: str
    buckets: InfluxBuckets

    def __repr__(self) -> str:
        # Never show the credentials (Streamlit prints arguments in some error messages).
        return f"Sources(influx_url={self.influx_url!r}, buckets={self.buckets!r})"


def sources() -> Sources:
    """The stores as configured now (FLEETWATCH_DASHBOARD_* first, then the service's)."""
    dashboard = load_settings(DashboardSettings)
    postgres = dashboard.postgres(load_settings(PostgresSettings))
    influx = dashboard.influx(load_settings(InfluxSettings))
    hourly = load_settings(RetentionSettings).influx_hourly_bucket
    return Sources(
        database_url=postgres.sqlalchemy_url,
        influx_url=influx.influx_url,
        influx_token=influx.influx_token.get_secret_value(),
        influx_org=influx.influx_org,
        buckets=InfluxBuckets(raw=influx.influx_bucket, hourly=hourly),
    )


@contextmanager
def shown_errors() -> Iterator[None]:
    """Show a store, settings or report error on the page and stop it there."""
    try:
        yield
    except (StoreError, SettingsError, AnalyticsError, FluxLibraryError) as exc:
        st.error(str(exc))
        st.stop()


def clear() -> None:
    """Forget every cached frame and close every connection (tests, or after a migration)."""
    st.cache_data.clear()
    st.cache_resource.clear()


# --- connections ---------------------------------------------------------------------------


def _dispose(engine: Engine) -> None:
    engine.dispose()


def _close(client: InfluxDBClient) -> None:
    client.close()  # type: ignore[no-untyped-call]  # influxdb-client is partly typed


@st.cache_resource(on_release=_dispose, show_spinner=False)
def _engine(database_url: str) -> Engine:
    return make_engine(PostgresSettings.model_validate({"database_url": database_url}))


@st.cache_resource(on_release=_close, show_spinner=False)
def _client(influx_url: str, token: str, org: str) -> InfluxDBClient:
    return make_client(_influx_settings(influx_url, token, org))


def _influx_settings(url: str, token: str, org: str) -> InfluxSettings:
    return InfluxSettings.model_validate(
        {"influx_url": url, "influx_token": token, "influx_org": org}
    )


def _pg(src: Sources) -> Engine:
    return _engine(src.database_url)


def _influx(src: Sources) -> InfluxDBClient:
    return _client(src.influx_url, src.influx_token, src.influx_org)


def influx_client(src: Sources) -> InfluxDBClient:
    """The shared InfluxDB client of ``src`` (for queries that are not reports)."""
    return _influx(src)


# --- PostgreSQL reports --------------------------------------------------------------------


@st.cache_data(ttl=_DIRECTORY_TTL, show_spinner=False)
def directory(src: Sources) -> pl.DataFrame:
    """Every active device's hostname, zone, country, kind and type: the filters' choices."""
    fleet = load.load_devices(_pg(src), Period.last(timedelta(seconds=1)))
    return fleet.select("hostname", "zone", "country", "kind", "device_type")


@st.cache_data(ttl=_DIRECTORY_TTL, show_spinner=False)
def device_metrics(src: Sources) -> pl.DataFrame:
    """Every device type's metrics (``analytics.load.load_device_metrics``)."""
    return load.load_device_metrics(_pg(src))


@st.cache_data(ttl=TTL, show_spinner="Loading the robots…")
def robots(src: Sources) -> pl.DataFrame:
    """Every robot's condition now (``analytics.robots``)."""
    return load.load_robots(_pg(src))


@st.cache_data(ttl=TTL, show_spinner="Loading the jobs…")
def jobs(src: Sources, period: Period, filters: ReportFilter) -> pl.DataFrame:
    """The jobs active now or started in the period (``analytics.robots``)."""
    return load.load_jobs(_pg(src), period, filters)


@st.cache_data(ttl=TTL, show_spinner="Loading the fleet…")
def devices(src: Sources, period: Period, filters: ReportFilter) -> pl.DataFrame:
    """The devices frame (``analytics.fleet``)."""
    return load.load_devices(_pg(src), period, filters)


@st.cache_data(ttl=TTL, show_spinner="Loading alarms…")
def alarm_events(src: Sources, period: Period, filters: ReportFilter) -> pl.DataFrame:
    """The period's alarm events (``analytics.alarms``)."""
    return load.load_alarm_events(_pg(src), period, filters)


@st.cache_data(ttl=TTL, show_spinner="Loading active alarms…")
def active_alarms(src: Sources, filters: ReportFilter) -> pl.DataFrame:
    """The alarm events still open, however old (``analytics.alarms``)."""
    return load.load_active_alarms(_pg(src), filters)


@st.cache_data(ttl=TTL, show_spinner="Loading unacknowledged alarms…")
def unacknowledged_alarms(src: Sources, filters: ReportFilter) -> pl.DataFrame:
    """The last day's alarms that are over but were never acknowledged."""
    since = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=1)
    return load.load_unacknowledged_alarms(_pg(src), since, filters)


@st.cache_data(ttl=TTL, show_spinner="Loading commands…")
def commands(src: Sources, period: Period, filters: ReportFilter) -> pl.DataFrame:
    """The period's commands (``analytics.commands``)."""
    return load.load_commands(_pg(src), period, filters)


@st.cache_data(ttl=TTL, show_spinner="Summing heartbeat counts…")
def heartbeat_totals(
    src: Sources, period: Period, filters: ReportFilter, by: Literal["day", "device"]
) -> pl.DataFrame:
    """Heartbeats received and points written per day or per device (``analytics.storage``)."""
    return load.load_heartbeat_totals(_pg(src), period, filters, by=by)


@st.cache_data(ttl=TTL, show_spinner="Loading the device…")
def device(src: Sources, hostname: str) -> pl.DataFrame:
    """One device with every column of its status (``analytics.load.load_device``)."""
    return load.load_device(_pg(src), hostname)


@st.cache_data(ttl=TTL, show_spinner="Loading rule events…")
def rule_events(src: Sources, period: Period, filters: ReportFilter) -> pl.DataFrame:
    """The devices' rule events open or raised in the period (``analytics.alerts``)."""
    return load.load_rule_events(_pg(src), period, filters)


@st.cache_data(ttl=TTL, show_spinner="Loading the connection log…")
def connection_log(src: Sources, period: Period, filters: ReportFilter) -> pl.DataFrame:
    """The period's connections and disconnections (``analytics.device``)."""
    return load.load_connection_log(_pg(src), period, filters)


@st.cache_data(ttl=TTL, show_spinner="Loading state snapshots…")
def state_snapshots(src: Sources, period: Period, hostname: str) -> pl.DataFrame:
    """A WebSocket device's reported states in the period (``analytics.device``)."""
    return load.load_state_snapshots(_pg(src), period, hostname)


@st.cache_data(ttl=TTL, show_spinner="Loading dead letters…")
def dead_letters(src: Sources, period: Period, hostnames: tuple[str, ...]) -> pl.DataFrame:
    """The period's dead letters from ``hostnames`` (all when empty; ``analytics.device``)."""
    return load.load_dead_letters(_pg(src), period, hostnames)


@st.cache_data(ttl=_DIRECTORY_TTL, show_spinner="Loading device positions…")
def positions(src: Sources, filters: ReportFilter) -> pl.DataFrame:
    """The devices' installed positions (``analytics.positions``)."""
    return load.load_positions(_pg(src), filters)


# --- InfluxDB ------------------------------------------------------------------------------


@st.cache_data(ttl=TTL, show_spinner="Counting stored points…")
def points_per_day(
    src: Sources, period: Period, filters: ReportFilter, source: Literal["raw", "hourly"]
) -> pl.DataFrame:
    """Heartbeat points stored per day and change type (``load.load_points_per_day``)."""
    return load.load_points_per_day(
        _influx(src), src.buckets, period, filters, source=source, org=src.influx_org
    )


@st.cache_data(ttl=TTL, show_spinner="Reading the device's history…")
def device_history(
    src: Sources, period: Period, device_id: int, hostname: str, kind: str
) -> pl.DataFrame:
    """The points stored for one device (``analytics.load.load_device_history``)."""
    return load.load_device_history(
        _influx(src),
        src.buckets,
        period,
        device_id=device_id,
        hostname=hostname,
        kind=kind,
        org=src.influx_org,
    )


@st.cache_data(ttl=TTL, show_spinner=False)
def history_start(
    src: Sources, field: str, period: Period, filters: ReportFilter
) -> datetime | None:
    """When the selection's stored points of ``field`` start (``load.load_history_start``)."""
    return load.load_history_start(
        _influx(src), src.buckets, field, period, filters, org=src.influx_org
    )


def trend_query(
    src: Sources,
    *,
    field: str,
    period: Period,
    window: timedelta,
    filters: ReportFilter,
    by: tuple[str, ...],
    fleet_devices: int | None,
) -> TrendQuery:
    """The Flux behind :func:`trend` (rendering only, nothing to cache)."""
    return load.trend_query(
        src.buckets, field, period, window, filters=filters, by=by, fleet_devices=fleet_devices
    )


@st.cache_data(ttl=TTL, show_spinner="Reading the trend…")
def trend(src: Sources, query: TrendQuery, by: tuple[str, ...]) -> pl.DataFrame:
    """The time-weighted trend :func:`trend_query` describes (``analytics.load.run_trend``)."""
    return load.run_trend(_influx(src), query, by, org=src.influx_org)


def run_query(src: Sources, flux: str) -> FluxResult:
    """Run an engineer's Flux as written, uncached (they expect what the store says now),
    with the dashboard's read token and within its limits: at most
    FLEETWATCH_DASHBOARD_FLUX_MAX_ROWS rows, cancelled after
    FLEETWATCH_DASHBOARD_FLUX_TIMEOUT_S (FluxLibraryError saying so)."""
    limits = load_settings(DashboardSettings)
    settings = _influx_settings(src.influx_url, src.influx_token, src.influx_org)
    try:
        return run_bounded_flux(
            settings,
            flux,
            timeout_s=limits.dashboard_flux_timeout_s,
            max_rows=limits.dashboard_flux_max_rows,
        )
    except FluxTimeoutError as exc:
        raise FluxLibraryError(f"{exc} or raise {ENV_PREFIX}DASHBOARD_FLUX_TIMEOUT_S") from exc


@st.cache_data(ttl=TTL, show_spinner=False)
def open_commands(src: Sources, limit: int = 200) -> list[CommandRow]:
    """Commands not finished yet, newest first (what may still be cancelled)."""
    url = src.database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            rows = commands_store.recent(conn, limit=limit * 5)
    except psycopg.OperationalError as exc:
        raise StoreUnavailableError(f"PostgreSQL unreachable: {exc}") from exc
    return [row for row in rows if row.status in commands_store.OPEN][:limit]
