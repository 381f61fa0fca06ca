"""Loading the report frames from the stores: a thin layer, one query per report.

PostgreSQL: each loader runs one SQLAlchemy Core statement built from ``stores.postgres.schema``
(joins and aggregation done by the database, filters in its WHERE clause, never a query per
device) and returns a Polars frame of the schema its report module declares. InfluxDB: the
trend and point-count loaders render a query of the Flux library
(``stores/influx/flux``) and run it into Polars.

Errors are the stores': StoreUnavailableError when a store does not answer, StoreError when
it refuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, TypeAlias

import polars as pl
import psycopg
from influxdb_client.client.influxdb_client import InfluxDBClient
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    Engine,
    Float,
    Integer,
    Numeric,
    Select,
    Text,
    cast,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CompoundSelect

from analytics import alarms, alerts, commands, device, fleet, positions, robots, storage, trends
from analytics.selection import AnalyticsError, Period, ReportFilter
from ingest.kinds import metric_measurements
from ingest.kinds.panel import PANEL
from stores.errors import StoreError
from stores.influx.flux_library import ParamValue, load_query, run_flux
from stores.postgres import rollups
from stores.postgres.errors import sql_errors
from stores.postgres.schema import (
    ConnectionEvent,
    alarm_events,
    command_log,
    dead_letters,
    device_cdc_state,
    device_connection_log,
    device_state_snapshots,
    device_status,
    device_type_metrics,
    device_types,
    devices,
    heartbeat_counts,
    heartbeat_counts_daily,
    jobs,
)
from stores.postgres.schema import events as rule_events
from stores.postgres.schema import robots as robots_table
from stores.postgres.schema import rules as rules_table

__all__ = [
    "DEVICE_SCHEMA",
    "DEVICE_TAGS",
    "ROLLUP_DELAY",
    "InfluxBuckets",
    "TrendQuery",
    "load_active_alarms",
    "load_alarm_events",
    "load_commands",
    "load_connection_log",
    "load_dead_letters",
    "load_device",
    "load_device_history",
    "load_device_metrics",
    "load_devices",
    "load_heartbeat_counts",
    "load_heartbeat_totals",
    "load_history_start",
    "load_jobs",
    "load_points_per_day",
    "load_positions",
    "load_robots",
    "load_rule_events",
    "load_trend",
    "metric_trend_query",
    "rollup_reaches",
    "run_trend",
    "trend_query",
]

DEVICE_TAGS: Final = ("device_id", "hostname", "zone", "country")
"""The tags of a device's series: a trend ``by`` them has one series per device."""
_HOUR: Final = timedelta(hours=1)
ROLLUP_DELAY: Final = timedelta(minutes=15)
_CARRY: Final = timedelta(minutes=10)  # how far sensor_trend.flux looks back (its `carry`)
"""How long after an hour the per-zone rollup holds it: the task runs 5 minutes past and
takes a few minutes on a large fleet (about 1 minute per hour of 10,000 devices)."""
_DAY: Final = timedelta(days=1)
_Select: TypeAlias = Select[*tuple[Any, ...]]
_Compound: TypeAlias = CompoundSelect[*tuple[Any, ...]]
# date_bin()'s origin: days start at 00:00 UTC.
_EPOCH_LITERAL: Final = literal(datetime(2000, 1, 1, tzinfo=UTC), DateTime(timezone=True))
_ALL_FILTER: Final = ReportFilter()


# --- PostgreSQL ----------------------------------------------------------------------------


def load_devices(
    engine: Engine, period: Period, filters: ReportFilter = _ALL_FILTER
) -> pl.DataFrame:
    """Every active device with its current status and the period's disconnections
    (:data:`analytics.fleet.DEVICES_SCHEMA`)."""
    log = device_connection_log.c
    dropped = (
        select(log.device_id, func.count().label("disconnects"))
        .where(
            log.event.in_([ConnectionEvent.DISCONNECTED, ConnectionEvent.TIMEOUT]),
            log.timestamp >= period.start,
            log.timestamp < period.end,
        )
        .group_by(log.device_id)
        .subquery("dropped")
    )
    d, s = devices.c, device_status.c
    statement = (
        select(
            d.id,
            d.hostname,
            d.zone,
            d.country,
            s.firmware_version,
            func.coalesce(s.is_online, False),
            s.device_state,
            s.last_seen,
            func.coalesce(s.device_synced, False),
            s.sync_attempts,
            s.free_heap,
            s.min_heap,
            s.rssi,
            s.error_flags,
            s.error_count,
            s.boot_count,
            s.wifi_disconnects,
            s.mqtt_disconnects,
            func.coalesce(dropped.c.disconnects, 0),
            d.kind,
            device_types.c.name,
            d.transport,
        )
        .select_from(
            devices.outerjoin(device_status, s.device_id == d.id)
            .outerjoin(dropped, dropped.c.device_id == d.id)
            .outerjoin(device_types, device_types.c.id == d.device_type_id)
        )
        .where(d.active, *_device_filter(filters))
        .order_by(d.id)
    )
    return _frame(engine, statement, fleet.DEVICES_SCHEMA, "loading the fleet")


def load_alarm_events(
    engine: Engine, period: Period, filters: ReportFilter = _ALL_FILTER
) -> pl.DataFrame:
    """The alarm events raised in the period (:data:`analytics.alarms.EVENTS_SCHEMA`)."""
    a = alarm_events.c
    return _alarms(
        engine, [a.timestamp >= period.start, a.timestamp < period.end], filters, "alarm events"
    )


def load_active_alarms(engine: Engine, filters: ReportFilter = _ALL_FILTER) -> pl.DataFrame:
    """The alarm events not resolved yet, however old (:data:`analytics.alarms.EVENTS_SCHEMA`)."""
    return _alarms(engine, [alarm_events.c.resolved_at.is_(None)], filters, "active alarms")


def load_unacknowledged_alarms(
    engine: Engine, since: datetime, filters: ReportFilter = _ALL_FILTER
) -> pl.DataFrame:
    """Alarms raised since ``since`` that are over but nobody acknowledged (a panic pressed
    and released still needs a person to look), output patterns aside."""
    a = alarm_events.c
    where = [
        a.timestamp >= since,
        a.resolved_at.is_not(None),
        a.acknowledged_at.is_(None),
        a.alarm_type != "OUTPUT_EVENT",
    ]
    return _alarms(engine, where, filters, "unacknowledged alarms")


def _alarms(
    engine: Engine,
    where: Sequence[ColumnElement[bool]],
    filters: ReportFilter,
    what: str,
) -> pl.DataFrame:
    a, d = alarm_events.c, devices.c
    statement = (
        select(
            a.id,
            a.device_id,
            d.hostname,
            d.zone,
            d.country,
            cast(a.alarm_type, Text),
            cast(a.event_state, Text),
            cast(a.priority, Text),
            a.output_type,
            a.pattern_type,
            a.duration_seconds,
            a.elapsed_seconds,
            a.timestamp,
            a.resolved_at,
            a.acknowledged_at,
        )
        .select_from(alarm_events.join(devices, d.id == a.device_id))
        .where(*where, *_device_filter(filters))
        .order_by(a.timestamp, a.id)
    )
    return _frame(engine, statement, alarms.EVENTS_SCHEMA, f"loading {what}")


def load_commands(
    engine: Engine, period: Period, filters: ReportFilter = _ALL_FILTER
) -> pl.DataFrame:
    """The commands queued in the period (:data:`analytics.commands.COMMANDS_SCHEMA`)."""
    c, d = command_log.c, devices.c
    statement = (
        select(
            c.id,
            cast(c.request_id, Text),
            c.device_id,
            d.hostname,
            d.zone,
            d.country,
            cast(c.command_type, Text),
            cast(c.status, Text),
            c.timestamp,
            c.sent_at,
            c.acknowledged_at,
            c.completed_at,
            c.failed_at,
            c.retry_count,
        )
        .select_from(command_log.join(devices, d.id == c.device_id))
        .where(c.timestamp >= period.start, c.timestamp < period.end, *_device_filter(filters))
        .order_by(c.timestamp, c.id)
    )
    return _frame(engine, statement, commands.COMMANDS_SCHEMA, "loading commands")


def load_heartbeat_counts(
    engine: Engine, period: Period, filters: ReportFilter = _ALL_FILTER
) -> pl.DataFrame:
    """Heartbeats received and points written per device and hour for the hours that start
    in the period (:data:`analytics.storage.COUNTS_SCHEMA`)."""
    h, d = heartbeat_counts.c, devices.c
    statement = (
        select(h.device_id, d.hostname, d.zone, d.country, h.hour, h.received, h.written, d.kind)
        .select_from(heartbeat_counts.join(devices, d.id == h.device_id))
        .where(h.hour >= period.start, h.hour < period.end, *_device_filter(filters))
        .order_by(h.hour, h.device_id)
    )
    return _frame(engine, statement, storage.COUNTS_SCHEMA, "loading heartbeat counts")


def load_heartbeat_totals(
    engine: Engine,
    period: Period,
    filters: ReportFilter = _ALL_FILTER,
    *,
    by: Literal["day", "device"],
) -> pl.DataFrame:
    """The heartbeat counts of the hours starting in the period, summed in the database per
    UTC ``day`` (device columns null, ``hour`` the day's 00:00) or per ``device`` (``hour``
    the period's start), as :data:`analytics.storage.COUNTS_SCHEMA` rows:
    ``analytics.storage.cdc_savings`` gives on them what it gives on the hourly rows. Whole
    days already rolled up are read from ``heartbeat_counts_daily``, one row per device and
    day instead of 24; the other hours from ``heartbeat_counts``."""
    parts = _counts_parts(engine, period).subquery()
    d = devices.c
    received = func.sum(parts.c.received).label("received")
    written = func.sum(parts.c.written).label("written")
    joined = parts.join(devices, d.id == parts.c.device_id)
    statement: _Select
    if by == "day":
        nothing = [null().label(name) for name in ("device_id", "hostname", "zone", "country")]
        statement = (
            select(*nothing, parts.c.day.label("hour"), received, written, null().label("kind"))
            .select_from(joined)
            .where(*_device_filter(filters))
            .group_by(parts.c.day)
            .order_by(parts.c.day)
        )
    else:
        start = literal(period.start, DateTime(timezone=True)).label("hour")
        statement = (
            select(
                d.id.label("device_id"),
                d.hostname,
                d.zone,
                d.country,
                start,
                received,
                written,
                d.kind,
            )
            .select_from(joined)
            .where(*_device_filter(filters))
            .group_by(d.id)
            .order_by(d.id)
        )
    return _frame(engine, statement, storage.COUNTS_SCHEMA, "summing heartbeat counts")


def _counts_parts(engine: Engine, period: Period) -> _Select | _Compound:
    """(device_id, day, received, written) rows covering the hours starting in ``period``:
    rolled-up days wholly inside it, and the remaining hours binned into their days."""
    h, daily = heartbeat_counts.c, heartbeat_counts_daily.c
    day = func.date_bin(literal_column("interval '1 day'"), h.hour, _EPOCH_LITERAL)
    hours = select(h.device_id, day.label("day"), h.received, h.written).where(
        h.hour >= period.start, h.hour < period.end
    )
    # Whole days inside the period and already rolled up: [first, last).
    first = rollups.day_start(period.start + _DAY - timedelta(microseconds=1))  # rounded up
    rolled = rollups.rolled_up_until(engine)
    last = min(rollups.day_start(period.end), rolled) if rolled is not None else first
    if last <= first:
        return hours
    days = select(daily.device_id, daily.day, daily.received, daily.written).where(
        daily.day >= first, daily.day < last
    )
    return union_all(hours.where(or_(h.hour < first, h.hour >= last)), days)


DEVICE_METRICS_SCHEMA: Final = pl.Schema(
    {
        "device_type": pl.String(),
        "metric": pl.String(),
        "unit": pl.String(),
        "value_type": pl.String(),
        "devices": pl.Int64(),
    }
)
"""One row per metric of every device type, in declared order, with the type's devices."""


def load_device_metrics(engine: Engine) -> pl.DataFrame:
    """Every device type's metrics (:data:`DEVICE_METRICS_SCHEMA`): what a Telemetry report
    can chart."""
    t, m, d = device_types.c, device_type_metrics.c, devices.c
    counted = (
        select(d.device_type_id, func.count().label("devices"))
        .where(d.active, d.device_type_id.is_not(None))
        .group_by(d.device_type_id)
        .subquery("counted")
    )
    statement = (
        select(t.name, m.name, m.unit, m.value_type, func.coalesce(counted.c.devices, 0))
        .select_from(
            device_types.join(device_type_metrics, m.device_type_id == t.id).outerjoin(
                counted, counted.c.device_type_id == t.id
            )
        )
        .order_by(t.name, m.position)
    )
    return _frame(engine, statement, DEVICE_METRICS_SCHEMA, "loading the device types")


def load_robots(engine: Engine) -> pl.DataFrame:
    """Every active robot with its battery and hottest servo as last stored
    (:data:`analytics.robots.ROBOTS_SCHEMA`)."""
    r, s, c = robots_table.c, device_status.c, device_cdc_state.c
    battery = (
        select(c.device_id, c["values"].label("v")).where(c.stream == "battery").subquery("battery")
    )
    servo_temp = cast(c["values"]["temperature"].astext, Double)
    servos = (
        select(
            c.device_id,
            func.max(servo_temp).label("hottest"),
            func.count().label("servos"),
        )
        .where(c.stream.like("servos/%"))
        .group_by(c.device_id)
        .subquery("servos")
    )
    statement = (
        select(
            r.device_id,
            r.robot_id,
            r.name,
            r.status,
            func.coalesce(s.is_online, False),
            r.last_seen,
            cast(battery.c.v["percentage"].astext, Double),
            cast(battery.c.v["voltage"].astext, Double),
            cast(battery.c.v["charging"].astext, Boolean),
            servos.c.hottest,
            func.coalesce(servos.c.servos, 0),
            r.battery_threshold_low,
            r.battery_threshold_critical,
            r.temp_threshold_warning,
            r.temp_threshold_critical,
        )
        .select_from(
            robots_table.outerjoin(device_status, s.device_id == r.device_id)
            .outerjoin(battery, battery.c.device_id == r.device_id)
            .outerjoin(servos, servos.c.device_id == r.device_id)
        )
        .where(r.is_active)
        .order_by(r.robot_id)
    )
    return _frame(engine, statement, robots.ROBOTS_SCHEMA, "loading the robots")


def load_jobs(engine: Engine, period: Period, filters: ReportFilter = _ALL_FILTER) -> pl.DataFrame:
    """The jobs active now or started in the period (:data:`analytics.robots.JOBS_SCHEMA`),
    newest first; ``filters.hostnames`` are robot_ids."""
    j = jobs.c
    clauses: list[ColumnElement[bool]] = [
        or_(j.status == "active", (j.start_time >= period.start) & (j.start_time < period.end))
    ]
    if filters.hostnames:
        clauses.append(j.robot_id.in_(filters.hostnames))
    statement = (
        select(
            j.id,
            j.robot_id,
            j.job_key,
            j.start_time,
            j.end_time,
            j.items_total,
            j.items_done,
            j.percent_complete,
            j.status,
            j.last_report_at,
            j.failure_reason,
        )
        .where(*clauses)
        .order_by(j.start_time.desc())
    )
    return _frame(engine, statement, robots.JOBS_SCHEMA, "loading the jobs")


# --- one device, and where the devices are -------------------------------------------------


def _polars_type(column: Column[Any]) -> pl.DataType:
    """The frame type of a table column (read through :func:`_frame`'s CSV)."""
    kind = column.type
    if isinstance(kind, DateTime):
        return pl.Datetime("us", "UTC")
    if isinstance(kind, Boolean):
        return pl.Boolean()
    if isinstance(kind, Integer):
        return pl.Int64()
    if isinstance(kind, Float | Numeric):
        return pl.Float64()
    return pl.String()  # texts, and addresses (inet, macaddr) in their text form


_STATUS: Final = tuple(c for c in device_status.c if c.name != "device_id")
DEVICE_SCHEMA: Final = pl.Schema(
    {
        "device_id": pl.Int64(),
        "hostname": pl.String(),
        "name": pl.String(),
        "kind": pl.String(),
        "device_type": pl.String(),
        "transport": pl.String(),
        "zone": pl.Int64(),
        "country": pl.String(),
        "latitude": pl.Float64(),
        "longitude": pl.Float64(),
        "location_desc": pl.String(),
        "serial_number": pl.String(),
        "mac_address": pl.String(),
        "installation_date": pl.Datetime("us", "UTC"),
        **{column.name: _polars_type(column) for column in _STATUS},
    }
)
"""One device's identity and every column of its ``device_status`` row (null when it has
none yet), in table order: what the Device page lists."""


def load_device(engine: Engine, hostname: str) -> pl.DataFrame:
    """The active device called ``hostname`` with its status now (:data:`DEVICE_SCHEMA`);
    no row when there is none (two devices sharing a name: both, lowest id first)."""
    d = devices.c
    statement = (
        select(
            d.id,
            d.hostname,
            d.name,
            d.kind,
            device_types.c.name,
            d.transport,
            d.zone,
            d.country,
            d.latitude,
            d.longitude,
            d.location_desc,
            d.serial_number,
            d.mac_address,
            d.installation_date,
            *_STATUS,
        )
        .select_from(
            devices.outerjoin(device_status, device_status.c.device_id == d.id).outerjoin(
                device_types, device_types.c.id == d.device_type_id
            )
        )
        .where(d.active, d.hostname == hostname)
        .order_by(d.id)
    )
    return _frame(engine, statement, DEVICE_SCHEMA, f"loading device {hostname}")


def load_rule_events(
    engine: Engine, period: Period, filters: ReportFilter = _ALL_FILTER
) -> pl.DataFrame:
    """The rule events about the filtered devices that are not resolved, however old, or
    were raised in the period, newest first (:data:`analytics.alerts.EVENTS_SCHEMA`)."""
    e, r, d = rule_events.c, rules_table.c, devices.c
    statement = (
        select(
            e.id,
            e.timestamp,
            e.severity,
            e.status,
            r.name,
            d.hostname,
            d.zone,
            e.source,
            e.value,
            e.threshold,
            e.message,
            e.acknowledged_by,
            e.acknowledged_at,
        )
        .select_from(
            rule_events.join(rules_table, r.id == e.rule_id).join(devices, d.id == e.device_id)
        )
        .where(
            or_(e.status != "resolved", (e.timestamp >= period.start) & (e.timestamp < period.end)),
            *_device_filter(filters),
        )
        .order_by(e.timestamp.desc(), e.id.desc())
    )
    return _frame(engine, statement, alerts.EVENTS_SCHEMA, "loading rule events")


def load_connection_log(
    engine: Engine, period: Period, filters: ReportFilter = _ALL_FILTER
) -> pl.DataFrame:
    """The filtered devices' connections, disconnections and liveness timeouts in the
    period, newest first (:data:`analytics.device.CONNECTIONS_SCHEMA`)."""
    log, d = device_connection_log.c, devices.c
    statement = (
        select(
            log.id,
            log.device_id,
            d.hostname,
            cast(log.event, Text),
            log.timestamp,
            cast(log.details, Text),
        )
        .select_from(device_connection_log.join(devices, d.id == log.device_id))
        .where(log.timestamp >= period.start, log.timestamp < period.end, *_device_filter(filters))
        .order_by(log.timestamp.desc(), log.id.desc())
    )
    return _frame(engine, statement, device.CONNECTIONS_SCHEMA, "loading the connection log")


def load_state_snapshots(engine: Engine, period: Period, hostname: str) -> pl.DataFrame:
    """The states a WebSocket device reported in the period, newest first
    (:data:`analytics.device.SNAPSHOTS_SCHEMA`)."""
    snap, d = device_state_snapshots.c, devices.c
    statement = (
        select(snap.id, snap.device_type, snap.timestamp, cast(snap.state_data, Text))
        .select_from(device_state_snapshots.join(devices, d.id == snap.device_id))
        .where(d.hostname == hostname, snap.timestamp >= period.start, snap.timestamp < period.end)
        .order_by(snap.timestamp.desc(), snap.id.desc())
        .limit(_SNAPSHOTS_SHOWN)
    )
    return _frame(engine, statement, device.SNAPSHOTS_SCHEMA, "loading state snapshots")


_SNAPSHOTS_SHOWN: Final = 5_000
"""The most snapshots a page loads (a device reporting every minute makes 1,440 a day)."""

_PAYLOAD_START: Final = 120
"""How many payload bytes a dead-letter row shows."""


def load_dead_letters(
    engine: Engine, period: Period, hostnames: Sequence[str] = ()
) -> pl.DataFrame:
    """The messages dead-lettered in the period (from ``hostnames``, when given), newest
    first (:data:`analytics.device.DEAD_LETTERS_SCHEMA`).

    A dead letter has no device row (many come from devices fleetwatch does not know): its
    device is the hostname level of its topic, ``{prefix}/{hostname}/{kind}``, the last but
    one whatever the prefix.
    """
    dl = dead_letters.c
    clauses: list[ColumnElement[bool]] = [
        dl.received_at >= period.start,
        dl.received_at < period.end,
    ]
    if hostnames:
        clauses.append(func.split_part(dl.topic, "/", -2).in_(list(hostnames)))
    statement = (
        select(
            dl.id,
            dl.received_at,
            dl.topic,
            dl.reason,
            dl.detail,
            func.length(dl.payload),
            func.encode(func.substring(dl.payload, 1, _PAYLOAD_START), "escape"),
        )
        .where(*clauses)
        .order_by(dl.received_at.desc(), dl.id.desc())
    )
    return _frame(engine, statement, device.DEAD_LETTERS_SCHEMA, "loading dead letters")


def load_positions(engine: Engine, filters: ReportFilter = _ALL_FILTER) -> pl.DataFrame:
    """Every filtered active device's installed position
    (:data:`analytics.positions.POSITIONS_SCHEMA`)."""
    d = devices.c
    statement = (
        select(d.id, cast(d.latitude, Double), cast(d.longitude, Double), d.location_desc)
        .where(d.active, *_device_filter(filters))
        .order_by(d.id)
    )
    return _frame(engine, statement, positions.POSITIONS_SCHEMA, "loading device positions")


def _device_filter(filters: ReportFilter) -> list[ColumnElement[bool]]:
    d = devices.c
    clauses: list[ColumnElement[bool]] = []
    if filters.zone is not None:
        clauses.append(d.zone == filters.zone)
    if filters.country is not None:
        clauses.append(d.country == filters.country)
    if filters.hostnames:
        clauses.append(d.hostname.in_(filters.hostnames))
    if filters.kind is not None:
        clauses.append(d.kind == filters.kind)
    if filters.device_type is not None:
        named = select(device_types.c.id).where(device_types.c.name == filters.device_type)
        clauses.append(d.device_type_id.in_(named.scalar_subquery()))
    return clauses


def _frame(engine: Engine, statement: _Select, schema: pl.Schema, doing: str) -> pl.DataFrame:
    """Run ``statement`` (its columns in ``schema``'s order) into a frame of ``schema``.

    The rows travel as CSV from ``COPY (...) TO STDOUT`` into Polars' reader: no Python
    object per value (300,000 alarm events: 1.4 s instead of 5.4 s through row tuples).
    Timestamps travel as integer microseconds since the epoch and booleans as 0/1, so the
    CSV needs no date or boolean parsing.
    """
    wire = {name: _wire_type(dtype) for name, dtype in schema.items()}
    columns = [
        _on_the_wire(column, dtype).label(name)
        for column, (name, dtype) in zip(statement.selected_columns, schema.items(), strict=True)
    ]
    compiled = statement.with_only_columns(*columns, maintain_column_froms=True).compile(
        dialect=engine.dialect, compile_kwargs={"render_postcompile": True}
    )
    copy = f"COPY ({compiled}) TO STDOUT WITH (FORMAT csv)"
    buffer = bytearray()
    with sql_errors(doing), engine.connect() as conn:
        driver = conn.connection.driver_connection
        if not isinstance(driver, psycopg.Connection):
            raise StoreError(f"PostgreSQL through {type(driver).__name__}: psycopg 3 is needed")
        with driver.cursor() as cursor, cursor.copy(copy, compiled.params) as data:
            for chunk in data:
                buffer += chunk
    if not buffer:
        return pl.DataFrame(schema=schema)
    frame = pl.read_csv(bytes(buffer), has_header=False, new_columns=list(schema), schema=wire)
    return frame.with_columns(_from_the_wire(name, dtype) for name, dtype in schema.items())


def _wire_type(dtype: pl.DataType) -> pl.DataType:
    return pl.Int64() if isinstance(dtype, pl.Datetime) or dtype == pl.Boolean else dtype


def _on_the_wire(column: ColumnElement[Any], dtype: pl.DataType) -> ColumnElement[Any]:
    if isinstance(dtype, pl.Datetime):
        return cast(func.floor(func.extract("epoch", column) * 1_000_000), BigInteger)
    if dtype == pl.Boolean:
        return cast(column, Integer)
    return column


def _from_the_wire(name: str, dtype: pl.DataType) -> pl.Expr:
    if isinstance(dtype, pl.Datetime):
        return pl.from_epoch(pl.col(name), time_unit="us").dt.replace_time_zone("UTC").cast(dtype)
    return pl.col(name).cast(dtype)


# --- InfluxDB ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InfluxBuckets:
    """Where the heartbeat history lives.

    Attributes:
        raw: the bucket of raw CDC points (FLEETWATCH_INFLUX_BUCKET).
        hourly: the bucket of ``device_hourly_stats`` (FLEETWATCH_INFLUX_HOURLY_BUCKET).
    """

    raw: str
    hourly: str

    def __post_init__(self) -> None:
        if not self.raw or not self.hourly:
            raise AnalyticsError("bucket names must not be empty")


@dataclass(frozen=True, slots=True)
class TrendQuery:
    """The Flux behind a trend: which library query, on which bucket, and its full text.

    Attributes:
        source: ``raw`` points, the ``hourly`` downsample or the per-zone ``groups``.
        name: the library query (``sensor_trend``, ``fleet_hourly`` or ``group_trend``).
        flux: the rendered query, ready to run or to paste into the InfluxDB UI.
        tail: for ``groups``, ``sensor_trend`` over the raw points of the hours the rollup
            has not reached yet, when they are few enough to read; None otherwise.
    """

    source: trends.TrendSource
    name: str
    flux: str
    tail: str | None = None


def trend_query(
    buckets: InfluxBuckets,
    field: str,
    period: Period,
    window: timedelta,
    *,
    filters: ReportFilter = _ALL_FILTER,
    by: Sequence[str] = DEVICE_TAGS,
    fleet_devices: int | None = None,
    hourly_after: timedelta = trends.HOURLY_AFTER,
    now: datetime | None = None,
) -> TrendQuery:
    """The Flux of a trend of ``field`` over ``period`` at ``window``, from the data
    ``trends.choose_source`` picks: raw points, the per-device hourly downsample, or (for a
    whole fleet, zone or country of ``fleet_devices`` devices) the per-zone rollup. The
    hourly data need whole-hour windows and start the period at the top of its hour; the
    rollup has no device tags to group ``by``, and ends where the hourly task has reached
    (:func:`rollup_reaches` at ``now``): the hours after it come from the raw points when
    they are few (``TrendQuery.tail``), as for a small fleet that has just started."""
    source = trends.choose_source(
        period.start, period.end, fleet_devices=fleet_devices, hourly_after=hourly_after
    )
    params: dict[str, ParamValue] = {
        "field": field,
        "stop": period.end,
        "window": window,
        "by": ",".join(by),
        **_flux_filter(filters),
    }
    if source == "raw":
        name = "sensor_trend"
        params |= {"bucket": buckets.raw, "start": period.start}
        return TrendQuery(source, name, load_query(name).render(params))
    if window % _HOUR:
        raise AnalyticsError(f"a trend over the hourly data needs whole hours, got {window}")
    params |= {"hourly_bucket": buckets.hourly, "start": trends.align(period.start, _HOUR)}
    if source == "hourly":
        return TrendQuery(source, "fleet_hourly", load_query("fleet_hourly").render(params))
    if not set(by) <= {"zone", "country"}:
        raise AnalyticsError(f"the per-zone rollup has no {', '.join(by)} to group by")
    recent = max(rollup_reaches(now or datetime.now(UTC)), period.start)
    tail = None
    if (
        recent < period.end
        and (fleet_devices or 0) * ((period.end - recent) / _HOUR) <= trends.RAW_DEVICE_HOURS
    ):
        raw = {k: v for k, v in params.items() if k != "hourly_bucket"}
        tail = load_query("sensor_trend").render(raw | {"bucket": buckets.raw, "start": recent})
    del params["hostnames"]
    stop = recent if tail is not None else period.end
    flux = load_query("group_trend").render(params | {"stop": stop})
    return TrendQuery(source, "group_trend", flux, tail)


def metric_trend_query(
    buckets: InfluxBuckets,
    device_type: str,
    metric: str,
    period: Period,
    window: timedelta,
    *,
    filters: ReportFilter = _ALL_FILTER,
    by: Sequence[str] = ("device_id", "hostname"),
    hourly_after: timedelta = trends.HOURLY_AFTER,
) -> TrendQuery:
    """The Flux of a time-weighted trend of a telemetry ``metric`` of the devices of
    ``device_type``: the raw points, or past ``hourly_after`` (with whole-hour windows) the
    hourly downsample, whose hours start the period at the top of its hour."""
    params: dict[str, ParamValue] = {
        "device_type": device_type,
        "stop": period.end,
        "window": window,
        "by": ",".join(by),
        "hostnames": ",".join(filters.hostnames),
    }
    if period.end - period.start > hourly_after and not window % _HOUR:
        name = "metric_hourly_trend"
        params |= {
            "hourly_bucket": buckets.hourly,
            "source": "telemetry",
            "metric": metric,
            "start": trends.align(period.start, _HOUR),
        }
        return TrendQuery("hourly", name, load_query(name).render(params))
    params |= {
        "bucket": buckets.raw,
        "measurement": "telemetry",
        "field": metric,
        "start": period.start,
    }
    return TrendQuery("raw", "sensor_trend", load_query("sensor_trend").render(params))


def rollup_reaches(now: datetime) -> datetime:
    """Until when the hourly task has written the rollup, if it runs on time: the top of the
    hour it last finished (it runs :data:`ROLLUP_DELAY` past each hour)."""
    return trends.align(now - ROLLUP_DELAY, _HOUR)


def load_trend(
    client: InfluxDBClient,
    buckets: InfluxBuckets,
    field: str,
    period: Period,
    window: timedelta,
    *,
    filters: ReportFilter = _ALL_FILTER,
    by: Sequence[str] = DEVICE_TAGS,
    fleet_devices: int | None = None,
    hourly_after: timedelta = trends.HOURLY_AFTER,
    org: str | None = None,
) -> pl.DataFrame:
    """The time-weighted trend of ``field`` (see :func:`trend_query` and
    ``analytics.trends``): the ``by`` tags, ``time`` (window start), ``value``,
    ``covered_seconds`` and ``devices``, sorted by series and time."""
    query = trend_query(
        buckets,
        field,
        period,
        window,
        filters=filters,
        by=by,
        fleet_devices=fleet_devices,
        hourly_after=hourly_after,
    )
    return run_trend(client, query, by, org=org)


def run_trend(
    client: InfluxDBClient, query: TrendQuery, by: Sequence[str], *, org: str | None = None
) -> pl.DataFrame:
    """Run a :func:`trend_query` (and its raw tail) into the trend frame of
    :func:`load_trend`; ``by`` are the tags the query groups by."""
    columns = {
        **{tag: pl.String() for tag in by},
        **trends.TREND_SCHEMA,
        "devices": pl.Int64(),
    }
    parts = [
        frame.rename({"_time": "time", "_value": "value"}).select(
            [pl.col(name).cast(dtype) for name, dtype in columns.items()]
        )
        for flux in (query.flux, query.tail)
        if flux is not None and not (frame := run_flux(client, flux, org=org)).is_empty()
    ]
    if not parts:
        return pl.DataFrame(schema=columns)
    # A window cut by the rollup's end has a row from each side: weight them by live time.
    return (
        pl.concat(parts)
        .group_by([*by, "time"])
        .agg(
            value=(pl.col("value") * pl.col("covered_seconds")).sum()
            / pl.col("covered_seconds").sum(),
            covered_seconds=pl.col("covered_seconds").sum(),
            devices=pl.col("devices").max(),
        )
        .select(list(columns))
        .sort([*by, "time"], nulls_last=True)
    )


def load_history_start(
    client: InfluxDBClient,
    buckets: InfluxBuckets,
    field: str,
    period: Period,
    filters: ReportFilter = _ALL_FILTER,
    *,
    org: str | None = None,
) -> datetime | None:
    """When the selection's raw heartbeat points of ``field`` start (``history_start.flux``),
    looking from as far before the period as a trend carries a value in (so a point found
    after ``period.start`` means nothing was in force before it); None without any point."""
    flux = load_query("history_start").render(
        {
            "bucket": buckets.raw,
            "field": field,
            "start": period.start - _CARRY,
            "stop": period.end,
            **_flux_filter(filters),
        }
    )
    frame = run_flux(client, flux, org=org)
    if frame.is_empty():
        return None
    first = frame["_time"].min()
    return first if isinstance(first, datetime) else None


def load_points_per_day(
    client: InfluxDBClient,
    buckets: InfluxBuckets,
    period: Period,
    filters: ReportFilter = _ALL_FILTER,
    *,
    per_device: bool = False,
    source: Literal["raw", "hourly"] = "raw",
    org: str | None = None,
) -> pl.DataFrame:
    """Heartbeat points stored in InfluxDB per UTC day and change type (and device, when
    ``per_device``): ``day``, [``hostname``,] ``change_type``, ``points``. The ``raw``
    source counts the points themselves (exact, but it reads every point); ``hourly`` adds
    up the counts the hourly task keeps (per zone, or per device when devices are picked),
    which miss the hours not downsampled yet."""
    params: dict[str, ParamValue] = {
        "start": period.start,
        "stop": period.end,
        **_flux_filter(filters),
    }
    if source == "hourly":
        if per_device:
            raise AnalyticsError("the hourly counts are not kept per device and day")
        flux = load_query("stored_points_per_day").render(
            params | {"hourly_bucket": buckets.hourly}
        )
    else:
        flux = load_query("cdc_points_per_day").render(
            params | {"bucket": buckets.raw, "per_device": per_device}
        )
    frame = run_flux(client, flux, org=org)
    keys = ["day", *(["hostname"] if per_device else []), "change_type"]
    schema = {"day": pl.Datetime("us", "UTC"), "hostname": pl.String(), "change_type": pl.String()}
    columns = {name: schema[name] for name in keys} | {"points": pl.Int64()}
    if frame.is_empty():
        return pl.DataFrame(schema=columns)
    return (
        frame.rename({"_time": "day"})
        .select([pl.col(name).cast(dtype) for name, dtype in columns.items()])
        .sort(keys)
    )


def load_device_history(
    client: InfluxDBClient,
    buckets: InfluxBuckets,
    period: Period,
    *,
    device_id: int,
    hostname: str,
    kind: str,
    org: str | None = None,
) -> pl.DataFrame:
    """The points the CDC stored for one device in the period, as written: ``_time`` and a
    column per field and tag, one row per point, oldest first (see
    ``analytics.device.history_series``). A panel's are its heartbeats
    (``device_series.flux``); any other kind's are its metric histories
    (``device_metric_series.flux`` over every measurement written as one: a telemetry
    device's readings, a robot's battery, servos, ...)."""
    times: dict[str, ParamValue] = {
        "bucket": buckets.raw,
        "start": period.start,
        "stop": period.end,
    }
    if kind == PANEL.name:
        flux = load_query("device_series").render(times | {"hostname": hostname})
    else:
        flux = load_query("device_metric_series").render(
            times | {"device_id": str(device_id), "measurements": ",".join(metric_measurements())}
        )
    frame = run_flux(client, flux, org=org)
    return frame.sort("_time") if "_time" in frame.columns else frame


def _flux_filter(filters: ReportFilter) -> dict[str, ParamValue]:
    return {
        "hostnames": ",".join(filters.hostnames),
        "zone": "" if filters.zone is None else str(filters.zone),
        "country": filters.country or "",
    }
