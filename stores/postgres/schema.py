"""The PostgreSQL schema as SQLAlchemy Core tables: the one place table and column names live.

Code that reads or writes PostgreSQL builds its statements from these ``Table`` objects, never
from names spelled in SQL strings. The database itself is created by the hand-written Alembic
revisions under ``stores/postgres/migrations``, not by ``metadata.create_all``; a test compares
the migrated database with this module so the two cannot drift.

The design follows the customer's ``devices`` / ``device_status`` / ``alarm_events`` /
``command_log`` tables, plus the connection log, the dead-letter store and the bookkeeping of
the heartbeat CDC (whose history is written to InfluxDB, not here).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Final

from sqlalchemy import (
    REAL,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Double,
    Enum,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    Time,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ENUM, INET, JSONB, MACADDR, UUID

# Constraint names are part of the contract: callers recognise an IntegrityError by them.
metadata = MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "ix": "ix_%(table_name)s_%(column_0_name)s",
    }
)


class DeviceState(enum.StrEnum):
    """Lifecycle state of a panel (``device_status.device_state``, a VARCHAR with a CHECK)."""

    BOOT = "BOOT"
    INIT = "INIT"
    CONNECTING = "CONNECTING"
    NORMAL = "NORMAL"
    ALARM = "ALARM"
    MAINTENANCE = "MAINTENANCE"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"
    OFFLINE = "OFFLINE"
    UNKNOWN = "UNKNOWN"


class NetworkType(enum.StrEnum):
    """Active network interface (``device_status.network_type``)."""

    WIFI = "wifi"
    ETHERNET = "ethernet"
    NONE = "none"


class AlarmType(enum.StrEnum):
    """What raised an alarm event (PostgreSQL type ``alarm_type_enum``)."""

    UNKNOWN = "UNKNOWN"
    PANIC1 = "PANIC1"
    PANIC2 = "PANIC2"
    TAMPER = "TAMPER"
    FIRE = "FIRE"
    INTRUSION = "INTRUSION"
    MEDICAL = "MEDICAL"
    DURESS = "DURESS"
    OUTPUT_EVENT = "OUTPUT_EVENT"


class EventState(enum.StrEnum):
    """State an alarm event reports (PostgreSQL type ``event_state_enum``)."""

    INACTIVE = "INACTIVE"
    ACTIVE = "ACTIVE"
    TEST = "TEST"
    STARTING = "STARTING"
    STOPPING = "STOPPING"


class Priority(enum.StrEnum):
    """Priority of an alarm event (PostgreSQL type ``priority_enum``)."""

    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


class CommandType(enum.StrEnum):
    """Kind of command sent to a device (PostgreSQL type ``command_type_enum``)."""

    UNKNOWN = "UNKNOWN"
    SYSTEM = "SYSTEM"
    CONFIG = "CONFIG"
    OUTPUT = "OUTPUT"
    DIAGNOSTIC = "DIAGNOSTIC"
    OTA = "OTA"


class CommandStatus(enum.StrEnum):
    """Where a command is in its life (PostgreSQL type ``command_status_enum``)."""

    PENDING = "PENDING"
    SENT = "SENT"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    CANCELLED = "CANCELLED"


class ChangeType(enum.StrEnum):
    """Why the CDC wrote a heartbeat point (PostgreSQL type ``change_type_enum``)."""

    ALARM = "ALARM"
    STATE_CHANGE = "STATE_CHANGE"
    CONNECTION = "CONNECTION"
    SENSOR_DATA = "SENSOR_DATA"
    PERIODIC = "PERIODIC"
    MANUAL = "MANUAL"
    MULTIPLE = "MULTIPLE"


class ConnectionEvent(enum.StrEnum):
    """A change in a device's connection (PostgreSQL type ``connection_event_enum``)."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    TIMEOUT = "timeout"


def _pg_enum(python_enum: type[enum.StrEnum], name: str) -> Enum:
    # Store the values (not the member names) so 'connected' stays lower case in the database.
    return Enum(
        python_enum,
        name=name,
        metadata=metadata,
        values_callable=lambda members: [member.value for member in members],
    )


alarm_type_enum: Final = _pg_enum(AlarmType, "alarm_type_enum")
event_state_enum: Final = _pg_enum(EventState, "event_state_enum")
priority_enum: Final = _pg_enum(Priority, "priority_enum")
command_type_enum: Final = _pg_enum(CommandType, "command_type_enum")
command_status_enum: Final = _pg_enum(CommandStatus, "command_status_enum")
connection_event_enum: Final = _pg_enum(ConnectionEvent, "connection_event_enum")
# No column uses it: it is the vocabulary of the CDC's change_type tag in InfluxDB, declared
# here so SQL reports that label heartbeat history share the customer's spelling.
change_type_enum: Final = ENUM(
    *(member.value for member in ChangeType), name="change_type_enum", metadata=metadata
)

OPEN_ALARM_INDEX: Final = "uq_alarm_events_open"
"""The unique index allowing one open event per (device, alarm type, output); an insert it
rejects raises IntegrityError whose ``orig.diag.constraint_name`` is this name."""


def _quoted(values: type[enum.StrEnum]) -> str:
    return ", ".join(f"'{member.value}'" for member in values)


def _device_fk(*, primary_key: bool = False) -> Column[int]:
    """The device a row belongs to; deleting the device deletes the row."""
    return Column(
        "device_id",
        Integer,
        ForeignKey("devices.id", ondelete="CASCADE"),
        primary_key=primary_key,
        nullable=False,
    )


def _created_at() -> Column[datetime]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


def _updated_at() -> Column[datetime]:
    """Kept current by the ``set_updated_at()`` trigger, whatever the UPDATE says."""
    return Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now())


def _flag(name: str, *, default: bool = False) -> Column[bool]:
    return Column(name, Boolean, nullable=False, server_default=text(str(default).lower()))


def _counter(name: str) -> Column[int]:
    return Column(name, Integer, nullable=False, server_default=text("0"))


def _tstz(name: str, *, nullable: bool = True) -> Column[datetime]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


class DeviceTransport(enum.StrEnum):
    """How a device reaches fleetwatch (``devices.transport``)."""

    MQTT = "mqtt"
    WEBSOCKET = "websocket"


class DeviceRecordStatus(enum.StrEnum):
    """Whether a device's data is used (``devices.status``, seed 002's vocabulary)."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    ERROR = "error"


class MetricValueType(enum.StrEnum):
    """Type of a device type's metric on the wire (``device_type_metrics.value_type``)."""

    FLOAT = "float"
    INT = "int"
    BOOL = "bool"


# A device type (seed 002): the metrics its devices report over JSON telemetry. Devices of a
# type are ``devices`` rows of kind 'telemetry' pointing here.
device_types = Table(
    "device_types",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")),
    Column("name", String(100), nullable=False),
    Column("description", Text),
    # An unknown serial announcing this type in its payload becomes a device of it.
    _flag("auto_register"),
    _created_at(),
    _updated_at(),
    UniqueConstraint("name", name="uq_device_types_name"),
)

device_type_metrics = Table(
    "device_type_metrics",
    metadata,
    Column(
        "device_type_id",
        UUID(as_uuid=True),
        ForeignKey("device_types.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String(63), nullable=False),
    Column("position", SmallInteger, nullable=False),
    Column("unit", String(50), nullable=False, server_default=text("''")),
    Column("value_type", String(5), nullable=False, server_default=MetricValueType.FLOAT.value),
    Column("metric_min", Numeric(15, 4)),
    Column("metric_max", Numeric(15, 4)),
    # How far a number may move before it is written again; NULL for flags.
    Column("dead_band", Double),
    _flag("is_event"),
    Column("description", Text),
    PrimaryKeyConstraint("device_type_id", "name", name="pk_device_type_metrics"),
    CheckConstraint("name ~ '^[a-z][a-z0-9_]*$'", name="name_identifier"),
    CheckConstraint(f"value_type IN ({_quoted(MetricValueType)})", name="value_type_known"),
    CheckConstraint(
        "metric_min IS NULL OR metric_max IS NULL OR metric_min <= metric_max", name="range_ordered"
    ),
    CheckConstraint(
        "(value_type = 'bool') = (dead_band IS NULL) AND (dead_band IS NULL OR dead_band > 0)",
        name="dead_band_for_numbers",
    ),
)

devices = Table(
    "devices",
    metadata,
    Column("id", Integer, Identity(always=False), primary_key=True),
    # Panels are known by their MAC, other kinds by their serial number.
    Column("mac_address", MACADDR),
    # The device's topic identity ({prefix}/{hostname}/...): the serial for telemetry devices.
    Column("hostname", String(32)),
    Column("country", String(3)),
    Column("zone", Integer),
    Column("latitude", Numeric(10, 7)),
    Column("longitude", Numeric(10, 7)),
    Column("location_desc", Text),
    _tstz("installation_date"),
    Column("notes", Text),
    _flag("active", default=True),
    _created_at(),
    _updated_at(),
    # Which declared kind the device is (ingest.kinds): 'panel', 'telemetry', ...
    Column("kind", String(20), nullable=False, server_default="panel"),
    Column("serial_number", String(100)),
    Column(
        "device_type_id",
        UUID(as_uuid=True),
        ForeignKey("device_types.id", ondelete="RESTRICT"),
    ),
    Column("name", String(255)),
    Column("status", String(20), nullable=False, server_default=DeviceRecordStatus.ACTIVE.value),
    # How the device reaches fleetwatch: the ingest process of that transport sends its
    # commands and watches its liveness.
    Column("transport", String(20), nullable=False, server_default=DeviceTransport.MQTT.value),
    UniqueConstraint("mac_address", name="uq_devices_mac_address"),
    UniqueConstraint("serial_number", name="uq_devices_serial_number"),
    CheckConstraint("latitude BETWEEN -90 AND 90", name="latitude_range"),
    CheckConstraint("longitude BETWEEN -180 AND 180", name="longitude_range"),
    CheckConstraint("kind ~ '^[a-z][a-z0-9_]*$'", name="kind_identifier"),
    CheckConstraint("kind <> 'panel' OR mac_address IS NOT NULL", name="panel_has_mac"),
    CheckConstraint(
        "kind <> 'telemetry' OR (serial_number IS NOT NULL AND device_type_id IS NOT NULL)",
        name="telemetry_has_type",
    ),
    CheckConstraint(f"status IN ({_quoted(DeviceRecordStatus)})", name="status_known"),
    CheckConstraint(f"transport IN ({_quoted(DeviceTransport)})", name="transport_known"),
    Index("ix_devices_hostname", "hostname"),
    Index("ix_devices_kind", "kind"),
    Index("ix_devices_device_type_id", "device_type_id"),
)

device_status = Table(
    "device_status",
    metadata,
    _device_fk(primary_key=True),
    _flag("is_online"),
    _tstz("last_seen"),
    Column("firmware_version", String(16)),
    Column("partition", Integer),
    Column("ota_validated", Boolean),
    Column("uptime", Integer),
    _counter("boot_count"),
    Column("device_state", String(20), nullable=False, server_default=DeviceState.UNKNOWN.value),
    Column("state_duration", Integer),
    Column("free_heap", Integer),
    Column("min_heap", Integer),
    Column("network_type", String(10)),
    Column("ip_address", INET),
    Column("rssi", Integer),
    Column("connected", Boolean),
    Column("has_ip", Boolean),
    Column("mqtt_connected", Boolean),
    Column("ntp_synced", Boolean),
    _tstz("last_ntp_sync"),
    _flag("panic1"),
    _flag("panic2"),
    _flag("box_sw"),
    _flag("siren"),
    _flag("turret"),
    _counter("panic1_count"),
    _counter("panic2_count"),
    _counter("tamper_count"),
    _counter("wifi_disconnects"),
    _counter("mqtt_disconnects"),
    _counter("error_count"),
    Column("temperature", REAL),
    Column("humidity", REAL),
    Column("fan_pwm_duty", SmallInteger),
    # A uint32 bitmap on the wire: bit 31 does not fit a signed INTEGER.
    Column("error_flags", BigInteger, nullable=False, server_default=text("0")),
    _flag("device_synced"),
    _tstz("last_sync_attempt"),
    _counter("sync_attempts"),
    _flag("alarm_active"),
    _tstz("last_alarm_at"),
    _flag("siren_active"),
    Column("siren_pattern", String(20)),
    _flag("turret_active"),
    Column("turret_pattern", String(20)),
    _tstz("last_output_change"),
    _tstz("last_status_update"),
    _tstz("last_heartbeat"),
    # Anti-replay: the highest AlarmEvent.sequence accepted from this device.
    Column("last_alarm_sequence", BigInteger),
    _updated_at(),
    # The CDC redelivery guard: the newest device timestamp processed (see 0011).
    _tstz("last_device_ts"),
    CheckConstraint("fan_pwm_duty BETWEEN 0 AND 100", name="fan_pwm_duty_range"),
    CheckConstraint("humidity BETWEEN 0 AND 100", name="humidity_range"),
    CheckConstraint(f"network_type IN ({_quoted(NetworkType)})", name="network_type_known"),
    CheckConstraint(f"device_state IN ({_quoted(DeviceState)})", name="device_state_known"),
    Index(
        "ix_device_status_alarm_active",
        "alarm_active",
        postgresql_where=text("alarm_active"),
    ),
    Index("ix_device_status_device_state", "device_state"),
    # No index on last_seen: every message changes it, and without one the update is HOT.
    postgresql_with={"fillfactor": 70},
)

alarm_events = Table(
    "alarm_events",
    metadata,
    Column("id", Integer, Identity(always=False), primary_key=True),
    _device_fk(),
    Column("sequence", BigInteger),
    _tstz("timestamp", nullable=False),
    # The device's own clock, kept only when plausible; "timestamp" is what fleetwatch trusts.
    _tstz("device_timestamp"),
    Column("alarm_type", alarm_type_enum, nullable=False),
    Column("event_state", event_state_enum, nullable=False),
    Column("priority", priority_enum, nullable=False),
    Column("physical_state", Boolean),
    Column("output_type", Integer),
    Column("pattern_type", Integer),
    Column("duration_seconds", Integer),
    Column("elapsed_seconds", Integer),
    _tstz("resolved_at"),
    _flag("acknowledged"),
    Column("acknowledged_by", String(100)),
    _tstz("acknowledged_at"),
    Column("notes", Text),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    _created_at(),
    _updated_at(),
    # The database, not the handler, forbids a second open alarm of one kind on one device.
    # Inputs have no output_type (NULL), which UNIQUE would treat as distinct: hence COALESCE.
    Index(
        OPEN_ALARM_INDEX,
        "device_id",
        "alarm_type",
        text("COALESCE(output_type, 0)"),
        unique=True,
        postgresql_where=text("resolved_at IS NULL"),
    ),
    # Not unique: one message may both resolve an event and open the next.
    Index("ix_alarm_events_device_sequence", "device_id", "sequence"),
    Index("ix_alarm_events_device_timestamp", "device_id", text("timestamp DESC")),
    Index("ix_alarm_events_type_state", "alarm_type", "event_state"),
    Index("ix_alarm_events_priority", "priority"),
    # Fleet-wide open alarms, newest first (the unique index above leads with device_id).
    Index(
        "ix_alarm_events_open",
        text("timestamp DESC"),
        postgresql_where=text("resolved_at IS NULL"),
    ),
    Index(
        "ix_alarm_events_output",
        "device_id",
        "output_type",
        text("timestamp DESC"),
        postgresql_where=text("alarm_type = 'OUTPUT_EVENT'"),
    ),
)

command_log = Table(
    "command_log",
    metadata,
    Column("id", Integer, Identity(always=False), primary_key=True),
    _device_fk(),
    Column("request_id", UUID(as_uuid=True), nullable=False),
    Column("sequence", BigInteger),
    Column("timestamp", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("command_type", command_type_enum, nullable=False),
    Column("command_data", JSONB),
    Column("auth_level", Integer),
    Column(
        "status",
        command_status_enum,
        nullable=False,
        server_default=CommandStatus.PENDING.value,
    ),
    _tstz("sent_at"),
    _tstz("acknowledged_at"),
    _tstz("completed_at"),
    _tstz("failed_at"),
    Column("response_data", JSONB),
    Column("response_code", Integer),
    Column("error_message", Text),
    _counter("retry_count"),
    Column("max_retries", Integer, nullable=False, server_default=text("3")),
    _tstz("next_retry_at"),
    # After this a command is no longer worth sending (a siren test an hour late is harmful).
    _tstz("expires_at"),
    Column("initiated_by", String(50)),
    Column("notes", Text),
    _created_at(),
    _updated_at(),
    # The commands of one request to many devices share it (seed 003's command_id).
    Column("fanout_id", UUID(as_uuid=True)),
    UniqueConstraint("request_id", name="uq_command_log_request_id"),
    CheckConstraint("auth_level BETWEEN 0 AND 2", name="auth_level_range"),
    Index("ix_command_log_device_timestamp", "device_id", text("timestamp DESC")),
    Index("ix_command_log_status", "status"),
    Index("ix_command_log_command_type", "command_type"),
    Index("ix_command_log_timestamp", text("timestamp DESC")),
    Index("ix_command_log_fanout_id", "fanout_id", postgresql_where=text("fanout_id IS NOT NULL")),
    # The retry loop's work queue: only commands still in flight.
    Index(
        "ix_command_log_due",
        "next_retry_at",
        postgresql_where=text("status IN ('PENDING', 'SENT', 'TIMEOUT')"),
    ),
)

device_connection_log = Table(
    "device_connection_log",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    _device_fk(),
    Column("event", connection_event_enum, nullable=False),
    Column("timestamp", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("details", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Index("ix_device_connection_log_device_timestamp", "device_id", text("timestamp DESC")),
)

# Messages ingest could not use, kept whole so they can be inspected or replayed. No device
# foreign key: many come from devices fleetwatch does not know.
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("topic", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("reason", String(64), nullable=False),
    Column("detail", Text),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_dead_letters_received_at", "received_at"),
    Index("ix_dead_letters_reason_received_at", "reason", "received_at"),
)

# The CDC dead band's reference: the values last written to InfluxDB per device, so that a
# restart neither floods InfluxDB with points nor skips a change.
heartbeat_cdc_state = Table(
    "heartbeat_cdc_state",
    metadata,
    _device_fk(primary_key=True),
    _tstz("written_at", nullable=False),
    Column("temperature", REAL),
    Column("humidity", REAL),
    Column("fan_pwm_duty", SmallInteger),
    Column("panic1", Boolean),
    Column("panic2", Boolean),
    Column("box_sw", Boolean),
    Column("siren", Boolean),
    Column("turret", Boolean),
    Column("device_state", String(20)),
    Column("is_online", Boolean),
    # Newest heartbeat device timestamp processed: a redelivered heartbeat is older or equal.
    _tstz("last_device_ts"),
    _updated_at(),
)

# The CDC reference of a device of a kind whose metrics are declared at run time (device
# types): the values last written as a point. Panels keep theirs in heartbeat_cdc_state.
device_cdc_state = Table(
    "device_cdc_state",
    metadata,
    _device_fk(primary_key=True),
    _tstz("written_at", nullable=False),
    Column("values", JSONB, nullable=False),
    Column("is_online", Boolean, nullable=False),
    _tstz("last_device_ts"),
    _updated_at(),
    # A device with several histories (a robot: battery, each servo, ...) has one per stream.
    Column("stream", String(64), primary_key=True, server_default=text("''")),
)


class RobotStatus(enum.StrEnum):
    """What a robot reports it is doing (``robots.status``, seed 004)."""

    ONLINE = "online"
    OFFLINE = "offline"
    ERROR = "error"
    MAINTENANCE = "maintenance"


class JobStatus(enum.StrEnum):
    """Where a robot's job is (``jobs.status``, seed 004)."""

    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"


# A robot (seed 004): the devices row of kind 'robot' (hostname = robot_id) and its own
# settings and thresholds.
robots = Table(
    "robots",
    metadata,
    _device_fk(primary_key=True),
    Column("robot_id", String(50), nullable=False),
    Column("name", String(100)),
    Column("description", Text),
    Column("location", JSONB),  # {x, y, z, heading}
    Column("status", String(20), nullable=False, server_default=RobotStatus.OFFLINE.value),
    Column("ip_address", String(45)),
    Column("camera_url", String(255)),
    Column("battery_threshold_low", Double, nullable=False, server_default=text("20.0")),
    Column("battery_threshold_critical", Double, nullable=False, server_default=text("10.0")),
    Column("temp_threshold_warning", Double, nullable=False, server_default=text("70.0")),
    Column("temp_threshold_critical", Double, nullable=False, server_default=text("80.0")),
    Column("settings", JSONB),
    _tstz("last_seen"),
    _created_at(),
    _updated_at(),
    _flag("is_active", default=True),
    UniqueConstraint("robot_id", name="uq_robots_robot_id"),
    CheckConstraint(f"status IN ({_quoted(RobotStatus)})", name="status_known"),
    Index("ix_robots_status", "status"),
)

# A robot's job (seed 004), fed by its job messages; one that stops reporting is failed.
jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, Identity(always=False), primary_key=True),
    _device_fk(),
    Column("robot_id", String(50), nullable=False),
    # The robot's own name for the job: its messages are matched by it.
    Column("job_key", String(64), nullable=False),
    _tstz("start_time", nullable=False),
    _tstz("end_time"),
    Column("items_total", Integer),
    Column("items_done", Integer, nullable=False, server_default=text("0")),
    Column("percent_complete", Double, nullable=False, server_default=text("0.0")),
    Column("last_item", JSONB),
    Column("status", String(20), nullable=False, server_default=JobStatus.ACTIVE.value),
    _tstz("last_report_at", nullable=False),
    Column("failure_reason", Text),
    _created_at(),
    _updated_at(),
    UniqueConstraint("device_id", "job_key", name="uq_jobs_device_id"),
    CheckConstraint(f"status IN ({_quoted(JobStatus)})", name="status_known"),
    CheckConstraint("items_done >= 0 AND (items_total IS NULL OR items_total >= 0)", name="items"),
    Index("ix_jobs_robot_id", "robot_id"),
    Index("ix_jobs_start_time", "start_time"),
    Index("ix_jobs_active", "last_report_at", postgresql_where=text("status = 'active'")),
)

# Per device and hour: heartbeats received against points written, the CDC's savings.
heartbeat_counts = Table(
    "heartbeat_counts",
    metadata,
    _device_fk(),
    _tstz("hour", nullable=False),
    _counter("received"),
    _counter("written"),
    PrimaryKeyConstraint("device_id", "hour", name="pk_heartbeat_counts"),
    Index("ix_heartbeat_counts_hour", "hour"),
    postgresql_with={"fillfactor": 80},  # room for the HOT update each heartbeat makes
)

# The same per device and UTC day, rolled up from the hours by housekeeping
# (stores.postgres.rollups): what reports over weeks read.
heartbeat_counts_daily = Table(
    "heartbeat_counts_daily",
    metadata,
    _device_fk(),
    _tstz("day", nullable=False),
    _counter("received"),
    _counter("written"),
    PrimaryKeyConstraint("device_id", "day", name="pk_heartbeat_counts_daily"),
    Index("ix_heartbeat_counts_daily_day", "day"),
)

# Accepted AlarmEvent sequences and a digest of each payload: an exact redelivery is
# idempotent, a different message reusing a sequence is a replay.
alarm_sequences = Table(
    "alarm_sequences",
    metadata,
    _device_fk(),
    Column("sequence", BigInteger, nullable=False),
    Column("digest", LargeBinary, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("device_id", "sequence", name="pk_alarm_sequences"),
    Index("ix_alarm_sequences_received_at", "received_at"),
)

# Points committed with their batch but not yet confirmed by InfluxDB (a transactional
# outbox): replayed when InfluxDB is back, so the two stores never disagree.
influx_outbox = Table(
    "influx_outbox",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("line", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


# --- alerting: rules -> events -> notifications (seeds 002 and 004) ----------------------


class Severity(enum.StrEnum):
    """How urgent an event is (seed 002's and seed 004's vocabulary)."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class EventStatus(enum.StrEnum):
    """Where an event is in its life: new -> acknowledged -> resolved."""

    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class DeliveryStatus(enum.StrEnum):
    """A notification delivery: waiting (pending, or held by a silence), then done."""

    PENDING = "pending"
    HELD = "held"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RuleOperator(enum.StrEnum):
    """How a rule compares a value with its thresholds."""

    GT = "gt"
    LT = "lt"
    GTE = "gte"
    LTE = "lte"
    EQ = "eq"
    NEQ = "neq"


class RuleScope(enum.StrEnum):
    """Which devices a rule watches."""

    DEVICE = "device"
    KIND = "kind"
    DEVICE_TYPE = "device_type"
    ZONE = "zone"
    FLEET = "fleet"


def _by(name: str) -> Column[str]:
    """Who did something (a person's name, or the part of fleetwatch that did it)."""
    return Column(name, String(100))


# How a notification is worded and whom it reaches by default (seed 002).
notification_templates = Table(
    "notification_templates",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("description", Text),
    Column("subject_template", Text),
    Column("message_template", Text, nullable=False),
    # [{"type": "email"|"sms"|"webhook", "address": ..., "name": ...}, ...]
    Column("recipients", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("priority", Integer, nullable=False, server_default=text("1")),
    Column("retry_count", Integer, nullable=False, server_default=text("3")),
    Column("retry_delay_minutes", Double, nullable=False, server_default=text("5.0")),
    _flag("is_active", default=True),
    _by("created_by"),
    _by("updated_by"),
    _created_at(),
    _updated_at(),
    UniqueConstraint("name", name="uq_notification_templates_name"),
    CheckConstraint("retry_count >= 0 AND retry_delay_minutes >= 0", name="retries"),
)

# A condition on a device value that raises events (seed 002's rules with seed 004's warning
# and critical levels), evaluated by ingest on every received value.
rules = Table(
    "rules",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")),
    Column("name", String(255), nullable=False),
    Column("description", Text),
    Column("scope_type", String(20), nullable=False, server_default=RuleScope.FLEET.value),
    Column("scope_value", String(255)),
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE")),
    # The declaration the value belongs to (panel, telemetry, robot_battery, ..., device)
    # and the value's name in it.
    Column("kind", String(64), nullable=False),
    Column("metric", String(64), nullable=False),
    Column("operator", String(3), nullable=False),
    Column("warning_threshold", Double),
    Column("critical_threshold", Double),
    Column("clear_threshold", Double),
    Column("for_seconds", Integer, nullable=False, server_default=text("0")),
    Column("clear_for_seconds", Integer, nullable=False, server_default=text("0")),
    Column("cooldown_minutes", Double, nullable=False, server_default=text("15.0")),
    _flag("is_enabled", default=True),
    _flag("is_builtin"),
    # [{"type": "notification", "template": name, "recipients": [...], "after_minutes": n}]
    Column("action_config", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    _tstz("last_triggered_at"),
    _by("created_by"),
    _by("updated_by"),
    _created_at(),
    _updated_at(),
    UniqueConstraint("name", name="uq_rules_name"),
    CheckConstraint(f"operator IN ({_quoted(RuleOperator)})", name="operator_known"),
    CheckConstraint(f"scope_type IN ({_quoted(RuleScope)})", name="scope_known"),
    CheckConstraint(
        "warning_threshold IS NOT NULL OR critical_threshold IS NOT NULL", name="threshold"
    ),
    CheckConstraint(
        "for_seconds >= 0 AND clear_for_seconds >= 0 AND cooldown_minutes >= 0", name="durations"
    ),
    Index("ix_rules_kind", "kind", "metric"),
    Index("ix_rules_device_id", "device_id"),
)

# Where each (rule, subject) stands between events: a condition pending its `for`, an open
# event waiting for its clear condition, the cooldown. A subject is a device's value
# ("12"), a robot part's ("12/servos/servo_1") or a channel's ("channel/webhook").
rule_states = Table(
    "rule_states",
    metadata,
    Column("rule_id", UUID(as_uuid=True), ForeignKey("rules.id", ondelete="CASCADE")),
    Column("subject", String(160), nullable=False),
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE")),
    Column("last_value", Double),
    _tstz("last_seen_at"),
    _tstz("pending_since"),
    Column("pending_severity", String(10)),
    _tstz("clear_since"),
    Column("event_id", BigInteger),
    Column("event_severity", String(10)),
    _tstz("last_triggered_at"),
    PrimaryKeyConstraint("rule_id", "subject", name="pk_rule_states"),
    Index("ix_rule_states_device_id", "device_id"),
)

# An occurrence of a rule's condition (seed 002): one open event per rule and subject.
events = Table(
    "events",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("rule_id", UUID(as_uuid=True), ForeignKey("rules.id"), nullable=False),
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE")),
    Column("subject", String(160), nullable=False),
    Column("source", String(128), nullable=False, server_default=text("''")),
    Column("timestamp", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("severity", String(10), nullable=False),
    Column("message", Text, nullable=False),
    Column("value", Double),
    Column("threshold", Double),
    Column("execution_results", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("metadata", JSONB),
    Column("status", String(15), nullable=False, server_default=EventStatus.NEW.value),
    _by("acknowledged_by"),
    _tstz("acknowledged_at"),
    Column("acknowledge_note", Text),
    _by("resolved_by"),
    _tstz("resolved_at"),
    Column("resolve_note", Text),
    _updated_at(),
    CheckConstraint(f"severity IN ({_quoted(Severity)})", name="severity_known"),
    CheckConstraint(f"status IN ({_quoted(EventStatus)})", name="status_known"),
    Index(
        "uq_events_open",
        "rule_id",
        "subject",
        unique=True,
        postgresql_where=text("status <> 'resolved'"),
    ),
    Index("ix_events_status", "status", "timestamp"),
    Index("ix_events_timestamp", "timestamp", "severity", "status"),
    Index("ix_events_device_id", "device_id"),
)

OPEN_EVENT_INDEX: Final = "uq_events_open"
"""One event per (rule, subject) that is not resolved: a second insert is rejected."""

# One message to one recipient about one event (seed 002), with its delivery attempts.
notification_deliveries = Table(
    "notification_deliveries",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("event_id", BigInteger, ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    Column(
        "template_id",
        BigInteger,
        ForeignKey("notification_templates.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # Why it was made: "opened", "escalation:2", "resolved", "severity:critical".
    Column("trigger", String(40), nullable=False),
    Column("recipient_type", String(20), nullable=False),
    Column("recipient_address", Text, nullable=False),
    Column("recipient_name", String(255)),
    Column("subject", Text),
    Column("rendered_message", Text, nullable=False),
    Column("status", String(10), nullable=False, server_default=DeliveryStatus.PENDING.value),
    Column("priority", Integer, nullable=False, server_default=text("1")),
    _counter("attempt_count"),
    Column("max_attempts", Integer, nullable=False, server_default=text("4")),
    Column("retry_delay_seconds", Double, nullable=False, server_default=text("300.0")),
    # An escalation step is dropped once its event is acknowledged or resolved.
    _flag("cancel_on_ack"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # A worker's claim while it sends: another takes the delivery over once it lapses.
    _tstz("claimed_until"),
    _tstz("last_attempt_at"),
    Column("error_message", Text),
    _tstz("sent_at"),
    _created_at(),
    # Deliveries of one group (a rule's events in one zone, to one recipient) go as one
    # message listing their devices; device_label is the device a delivery is about.
    Column("group_key", Text),
    Column("device_label", Text),
    # Sent again that often while the event is new; the silence that held it.
    Column("repeat_seconds", Double),
    Column("held_by", BigInteger),
    UniqueConstraint(
        "event_id",
        "template_id",
        "trigger",
        "recipient_type",
        "recipient_address",
        name="uq_notification_deliveries_event_id",
    ),
    CheckConstraint(f"status IN ({_quoted(DeliveryStatus)})", name="status_known"),
    Index(
        "ix_notification_deliveries_due",
        "next_attempt_at",
        postgresql_where=text("status = 'pending'"),
    ),
    Index("ix_notification_deliveries_event_id", "event_id"),
    Index("ix_notification_deliveries_status", "status", "created_at"),
    Index(
        "ix_notification_deliveries_group_key",
        "group_key",
        postgresql_where=text("status = 'pending' AND group_key IS NOT NULL"),
    ),
    Index(
        "ix_notification_deliveries_address",
        "recipient_address",
        "sent_at",
        postgresql_where=text("status = 'sent'"),
    ),
)


class SilenceScope(enum.StrEnum):
    """What a silence holds notifications back for."""

    DEVICE = "device"
    ZONE = "zone"
    RULE = "rule"


class SilenceEnd(enum.StrEnum):
    """What happens to held notifications when a silence ends."""

    RELEASE = "release"
    DROP = "drop"


# A window in which notifications about a device, a zone or a rule are held (a maintenance
# window is one that starts later); events are still recorded.
silences = Table(
    "silences",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("scope_type", String(10), nullable=False),
    Column("scope_value", String(255), nullable=False),  # hostname, zone number, rule name
    _tstz("starts_at", nullable=False),
    _tstz("ends_at", nullable=False),
    Column("on_end", String(10), nullable=False, server_default=SilenceEnd.RELEASE.value),
    Column("reason", Text),
    _by("created_by"),
    _created_at(),
    _by("ended_by"),
    # When its held deliveries were released or dropped.
    _tstz("settled_at"),
    # A mute timing: only inside this daily window (UTC) on these weekdays (bit 0 Monday).
    Column("weekdays", SmallInteger),
    Column("window_start", Time),
    Column("window_end", Time),
    CheckConstraint(f"scope_type IN ({_quoted(SilenceScope)})", name="scope_known"),
    CheckConstraint(f"on_end IN ({_quoted(SilenceEnd)})", name="on_end_known"),
    CheckConstraint("ends_at > starts_at", name="window"),
    CheckConstraint(
        "(window_start IS NULL) = (window_end IS NULL) AND "
        "(weekdays IS NULL OR weekdays BETWEEN 1 AND 127)",
        name="window_pair",
    ),
    Index("ix_silences_ends_at", "ends_at"),
)

# A report (seed 004): the figures of a period (data), its PDF, and whom it was sent to.
reports = Table(
    "reports",
    metadata,
    Column("id", Integer, Identity(always=False), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("description", Text),
    Column("robot_id", String(50)),
    Column("report_type", String(50), nullable=False),  # daily, weekly, custom
    Column("data", JSONB),
    Column("file_path", String(500)),
    _created_at(),
    Column("created_by", String(100)),
    _tstz("period_start"),
    _tstz("period_end"),
    _flag("scheduled"),
    Column("pdf", LargeBinary),
    Column("sent_to", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    _tstz("sent_at"),
    Column("send_error", Text),
    Index("ix_reports_robot_id", "robot_id"),
    Index("ix_reports_report_type", "report_type"),
    Index("ix_reports_created_at", "created_at"),
    Index("ix_reports_title", "title"),
    Index(
        "uq_reports_scheduled",
        "report_type",
        "period_start",
        unique=True,
        postgresql_where=text("scheduled"),
    ),
)


class UserRole(enum.StrEnum):
    """What a person may do (``users.role``): read, also act on the fleet, also administer."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


class LogLevel(enum.StrEnum):
    """How much an audit row matters (``system_logs.level``, seed 004's vocabulary)."""

    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


# The people who sign in (seed 004). A person is disabled, never deleted, so the audit trail
# keeps naming them. The hash is argon2id's encoded string (algorithm, parameters and salt).
users = Table(
    "users",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("username", String(50), nullable=False),
    Column("email", String(100), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(20), nullable=False, server_default=UserRole.VIEWER.value),
    _flag("is_active", default=True),
    _created_at(),
    _updated_at(),
    _tstz("last_sign_in_at"),
    _tstz("password_changed_at"),
    UniqueConstraint("username", name="uq_users_username"),
    UniqueConstraint("email", name="uq_users_email"),
    CheckConstraint(f"role IN ({_quoted(UserRole)})", name="role_known"),
    Index("ix_users_role", "role"),
)

# Personal API tokens: how scripts and the CLI act as a person. Only a SHA-256 of the token is
# kept (tokens are 256 random bits, so a slow hash adds nothing); the prefix identifies it.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column(
        "user_id", UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    ),
    Column("name", String(100), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False),
    _created_at(),
    _tstz("expires_at"),
    _tstz("last_used_at"),
    _tstz("revoked_at"),
    UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    UniqueConstraint("user_id", "name", name="uq_api_tokens_user_name"),
)

# Failed sign-ins per username as typed (known or not, so a lock-out tells nothing about
# which names exist): the growing delay and the temporary lock are worked out from these.
sign_in_throttle = Table(
    "sign_in_throttle",
    metadata,
    Column("username", String(100), primary_key=True),
    _counter("failures"),
    _tstz("last_failure_at"),
    _tstz("retry_at"),
    _tstz("locked_until"),
)

# The audit trail (seed 004's system_logs): who did what, from where, to which device. The
# person is kept by name as well, so a failed sign-in under an unknown name is recorded too.
system_logs = Table(
    "system_logs",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("timestamp", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("level", String(20), nullable=False),
    Column("category", String(50), nullable=False),
    Column("message", Text, nullable=False),
    Column("username", String(100)),
    Column("user_id", UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")),
    Column("device", String(255)),
    Column("source", String(100)),
    Column("details", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    CheckConstraint(f"level IN ({_quoted(LogLevel)})", name="level_known"),
    Index("ix_system_logs_timestamp", text("timestamp DESC")),
    Index("ix_system_logs_category", "category", text("timestamp DESC")),
    Index("ix_system_logs_username", "username", text("timestamp DESC")),
    Index("ix_system_logs_device", "device", text("timestamp DESC")),
)

# Per-device tokens of devices that authenticate themselves (WebSocket): SHA-256 digests, as
# for api_tokens. A device token speaks as its device and can do nothing else.
device_tokens = Table(
    "device_tokens",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    _device_fk(),
    Column("prefix", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False),
    Column("created_by", String(100)),
    _created_at(),
    _tstz("last_used_at"),
    _tstz("revoked_at"),
    UniqueConstraint("token_hash", name="uq_device_tokens_token_hash"),
    Index("ix_device_tokens_device_id", "device_id"),
)

# Every ``status`` a WebSocket device sent, whole (seed 003).
device_state_snapshots = Table(
    "device_state_snapshots",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    _device_fk(),
    Column("device_type", String(100), nullable=False),
    Column("state_data", JSONB, nullable=False),
    Column("timestamp", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_device_state_snapshots_device_timestamp", "device_id", text("timestamp DESC")),
    Index("ix_device_state_snapshots_timestamp", "timestamp"),
)

# The ids of messages taken lately, by device: a message resent after its acknowledgement
# was lost is recognised and not applied twice. Purged after a few days by housekeeping.
device_message_ids = Table(
    "device_message_ids",
    metadata,
    _device_fk(primary_key=True),
    Column("message_id", String(64), primary_key=True),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_device_message_ids_received_at", "received_at"),
)

# How far each ingest worker's consumer group has read in each partition of a stream,
# committed with the batch that read it (see migration 0012).
stream_offsets = Table(
    "stream_offsets",
    metadata,
    Column("consumer_group", String(255), primary_key=True),
    Column("topic", String(255), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("partition >= 0 AND next_offset >= 0", name="valid"),
)

TABLES_WITH_UPDATED_AT: Final = tuple(
    table for table in metadata.sorted_tables if "updated_at" in table.c
)
"""Each has a BEFORE UPDATE trigger running ``set_updated_at()``."""
