"""Initial schema: devices, their status, alarms, commands, connections, dead letters, CDC state.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-23

Written by hand and frozen: later changes go in new revisions, never here. It deliberately does
not import ``stores.postgres.schema``, which describes the *latest* schema.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ENUM_TYPES: dict[str, tuple[str, ...]] = {
    "alarm_type_enum": (
        "UNKNOWN",
        "PANIC1",
        "PANIC2",
        "TAMPER",
        "FIRE",
        "INTRUSION",
        "MEDICAL",
        "DURESS",
        "OUTPUT_EVENT",
    ),
    "event_state_enum": ("INACTIVE", "ACTIVE", "TEST", "STARTING", "STOPPING"),
    "priority_enum": ("LOW", "MEDIUM", "HIGH", "CRITICAL"),
    "command_type_enum": ("UNKNOWN", "SYSTEM", "CONFIG", "OUTPUT", "DIAGNOSTIC", "OTA"),
    "command_status_enum": (
        "PENDING",
        "SENT",
        "ACKNOWLEDGED",
        "COMPLETED",
        "FAILED",
        "TIMEOUT",
        "CANCELLED",
    ),
    "change_type_enum": (
        "ALARM",
        "STATE_CHANGE",
        "CONNECTION",
        "SENSOR_DATA",
        "PERIODIC",
        "MANUAL",
        "MULTIPLE",
    ),
    "connection_event_enum": ("connected", "disconnected", "timeout"),
}

DEVICE_STATES = (
    "'BOOT', 'INIT', 'CONNECTING', 'NORMAL', 'ALARM', "
    "'MAINTENANCE', 'ERROR', 'CRITICAL', 'OFFLINE', 'UNKNOWN'"
)

TABLES_WITH_UPDATED_AT = (
    "devices",
    "device_status",
    "alarm_events",
    "command_log",
    "heartbeat_cdc_state",
)

# Children first, so that downgrade can drop in this order.
TABLES = (
    "influx_outbox",
    "alarm_sequences",
    "heartbeat_counts",
    "heartbeat_cdc_state",
    "dead_letters",
    "device_connection_log",
    "command_log",
    "alarm_events",
    "device_status",
    "devices",
)


def _enum(name: str) -> postgresql.ENUM:
    """A reference to a type created by CREATE TYPE below (create_table must not create it)."""
    return postgresql.ENUM(name=name, create_type=False)


def _tstz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _now() -> sa.TextClause:
    return sa.text("now()")


def _device_fk(table: str, *, primary_key: bool = False) -> sa.Column[int]:
    return sa.Column(
        "device_id",
        sa.Integer,
        sa.ForeignKey("devices.id", name=f"fk_{table}_device_id", ondelete="CASCADE"),
        primary_key=primary_key,
        nullable=False,
    )


def _flag(name: str, default: str = "false") -> sa.Column[bool]:
    return sa.Column(name, sa.Boolean, nullable=False, server_default=sa.text(default))


def _counter(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer, nullable=False, server_default=sa.text("0"))


def upgrade() -> None:
    """Create the enum types, the tables, their indexes and the updated_at triggers."""
    for name, values in ENUM_TYPES.items():
        labels = ", ".join(f"'{value}'" for value in values)
        op.execute(f"CREATE TYPE {name} AS ENUM ({labels})")

    op.execute(
        """
        CREATE FUNCTION set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.updated_at := now();
            RETURN NEW;
        END;
        $$
        """
    )

    op.create_table(
        "devices",
        sa.Column("id", sa.Integer, sa.Identity(always=False), nullable=False),
        sa.Column("mac_address", postgresql.MACADDR, nullable=False),
        sa.Column("hostname", sa.String(32)),
        sa.Column("country", sa.String(3)),
        sa.Column("zone", sa.Integer),
        sa.Column("latitude", sa.Numeric(10, 7)),
        sa.Column("longitude", sa.Numeric(10, 7)),
        sa.Column("location_desc", sa.Text),
        sa.Column("installation_date", _tstz()),
        sa.Column("notes", sa.Text),
        _flag("active", default="true"),
        sa.Column("created_at", _tstz(), nullable=False, server_default=_now()),
        sa.Column("updated_at", _tstz(), nullable=False, server_default=_now()),
        sa.PrimaryKeyConstraint("id", name="pk_devices"),
        sa.UniqueConstraint("mac_address", name="uq_devices_mac_address"),
        sa.CheckConstraint("latitude BETWEEN -90 AND 90", name="ck_devices_latitude_range"),
        sa.CheckConstraint("longitude BETWEEN -180 AND 180", name="ck_devices_longitude_range"),
    )
    op.create_index("ix_devices_hostname", "devices", ["hostname"])

    op.create_table(
        "device_status",
        _device_fk("device_status", primary_key=True),
        _flag("is_online"),
        sa.Column("last_seen", _tstz()),
        sa.Column("firmware_version", sa.String(16)),
        sa.Column("partition", sa.Integer),
        sa.Column("ota_validated", sa.Boolean),
        sa.Column("uptime", sa.Integer),
        _counter("boot_count"),
        sa.Column(
            "device_state", sa.String(20), nullable=False, server_default=sa.text("'UNKNOWN'")
        ),
        sa.Column("state_duration", sa.Integer),
        sa.Column("free_heap", sa.Integer),
        sa.Column("min_heap", sa.Integer),
        sa.Column("network_type", sa.String(10)),
        sa.Column("ip_address", postgresql.INET),
        sa.Column("rssi", sa.Integer),
        sa.Column("connected", sa.Boolean),
        sa.Column("has_ip", sa.Boolean),
        sa.Column("mqtt_connected", sa.Boolean),
        sa.Column("ntp_synced", sa.Boolean),
        sa.Column("last_ntp_sync", _tstz()),
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
        sa.Column("temperature", sa.REAL),
        sa.Column("humidity", sa.REAL),
        sa.Column("fan_pwm_duty", sa.SmallInteger),
        # A uint32 bitmap on the wire: bit 31 does not fit a signed INTEGER.
        sa.Column("error_flags", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        _flag("device_synced"),
        sa.Column("last_sync_attempt", _tstz()),
        _counter("sync_attempts"),
        _flag("alarm_active"),
        sa.Column("last_alarm_at", _tstz()),
        _flag("siren_active"),
        sa.Column("siren_pattern", sa.String(20)),
        _flag("turret_active"),
        sa.Column("turret_pattern", sa.String(20)),
        sa.Column("last_output_change", _tstz()),
        sa.Column("last_status_update", _tstz()),
        sa.Column("last_heartbeat", _tstz()),
        sa.Column("last_alarm_sequence", sa.BigInteger),
        sa.Column("updated_at", _tstz(), nullable=False, server_default=_now()),
        sa.PrimaryKeyConstraint("device_id", name="pk_device_status"),
        sa.CheckConstraint(
            "fan_pwm_duty BETWEEN 0 AND 100", name="ck_device_status_fan_pwm_duty_range"
        ),
        sa.CheckConstraint("humidity BETWEEN 0 AND 100", name="ck_device_status_humidity_range"),
        sa.CheckConstraint(
            "network_type IN ('wifi', 'ethernet', 'none')",
            name="ck_device_status_network_type_known",
        ),
        sa.CheckConstraint(
            f"device_state IN ({DEVICE_STATES})", name="ck_device_status_device_state_known"
        ),
    )
    op.create_index(
        "ix_device_status_online", "device_status", ["is_online", sa.text("last_seen DESC")]
    )
    op.create_index(
        "ix_device_status_alarm_active",
        "device_status",
        ["alarm_active"],
        postgresql_where=sa.text("alarm_active"),
    )
    op.create_index("ix_device_status_device_state", "device_status", ["device_state"])
    op.create_index("ix_device_status_last_seen", "device_status", [sa.text("last_seen DESC")])

    op.create_table(
        "alarm_events",
        sa.Column("id", sa.Integer, sa.Identity(always=False), nullable=False),
        _device_fk("alarm_events"),
        sa.Column("sequence", sa.BigInteger),
        sa.Column("timestamp", _tstz(), nullable=False),
        sa.Column("device_timestamp", _tstz()),
        sa.Column("alarm_type", _enum("alarm_type_enum"), nullable=False),
        sa.Column("event_state", _enum("event_state_enum"), nullable=False),
        sa.Column("priority", _enum("priority_enum"), nullable=False),
        sa.Column("physical_state", sa.Boolean),
        sa.Column("output_type", sa.Integer),
        sa.Column("pattern_type", sa.Integer),
        sa.Column("duration_seconds", sa.Integer),
        sa.Column("elapsed_seconds", sa.Integer),
        sa.Column("resolved_at", _tstz()),
        _flag("acknowledged"),
        sa.Column("acknowledged_by", sa.String(100)),
        sa.Column("acknowledged_at", _tstz()),
        sa.Column("notes", sa.Text),
        sa.Column(
            "metadata", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")
        ),
        sa.Column("created_at", _tstz(), nullable=False, server_default=_now()),
        sa.Column("updated_at", _tstz(), nullable=False, server_default=_now()),
        sa.PrimaryKeyConstraint("id", name="pk_alarm_events"),
    )
    # At most one open event per device, alarm type and output. Inputs carry no output_type;
    # UNIQUE treats NULLs as distinct, so COALESCE folds them into one key.
    op.create_index(
        "uq_alarm_events_open",
        "alarm_events",
        ["device_id", "alarm_type", sa.text("COALESCE(output_type, 0)")],
        unique=True,
        postgresql_where=sa.text("resolved_at IS NULL"),
    )
    # Not unique: one message may both resolve an event and open the next.
    op.create_index("ix_alarm_events_device_sequence", "alarm_events", ["device_id", "sequence"])
    op.create_index(
        "ix_alarm_events_device_timestamp",
        "alarm_events",
        ["device_id", sa.text("timestamp DESC")],
    )
    op.create_index("ix_alarm_events_type_state", "alarm_events", ["alarm_type", "event_state"])
    op.create_index("ix_alarm_events_priority", "alarm_events", ["priority"])
    op.create_index(
        "ix_alarm_events_open",
        "alarm_events",
        [sa.text("timestamp DESC")],
        postgresql_where=sa.text("resolved_at IS NULL"),
    )
    op.create_index(
        "ix_alarm_events_output",
        "alarm_events",
        ["device_id", "output_type", sa.text("timestamp DESC")],
        postgresql_where=sa.text("alarm_type = 'OUTPUT_EVENT'"),
    )

    op.create_table(
        "command_log",
        sa.Column("id", sa.Integer, sa.Identity(always=False), nullable=False),
        _device_fk("command_log"),
        sa.Column("request_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("sequence", sa.BigInteger),
        sa.Column("timestamp", _tstz(), nullable=False, server_default=_now()),
        sa.Column("command_type", _enum("command_type_enum"), nullable=False),
        sa.Column("command_data", postgresql.JSONB),
        sa.Column("auth_level", sa.Integer),
        sa.Column(
            "status",
            _enum("command_status_enum"),
            nullable=False,
            server_default=sa.text("'PENDING'"),
        ),
        sa.Column("sent_at", _tstz()),
        sa.Column("acknowledged_at", _tstz()),
        sa.Column("completed_at", _tstz()),
        sa.Column("failed_at", _tstz()),
        sa.Column("response_data", postgresql.JSONB),
        sa.Column("response_code", sa.Integer),
        sa.Column("error_message", sa.Text),
        _counter("retry_count"),
        sa.Column("max_retries", sa.Integer, nullable=False, server_default=sa.text("3")),
        sa.Column("next_retry_at", _tstz()),
        sa.Column("expires_at", _tstz()),
        sa.Column("initiated_by", sa.String(50)),
        sa.Column("notes", sa.Text),
        sa.Column("created_at", _tstz(), nullable=False, server_default=_now()),
        sa.Column("updated_at", _tstz(), nullable=False, server_default=_now()),
        sa.PrimaryKeyConstraint("id", name="pk_command_log"),
        sa.UniqueConstraint("request_id", name="uq_command_log_request_id"),
        sa.CheckConstraint("auth_level BETWEEN 0 AND 2", name="ck_command_log_auth_level_range"),
    )
    op.create_index(
        "ix_command_log_device_timestamp", "command_log", ["device_id", sa.text("timestamp DESC")]
    )
    op.create_index("ix_command_log_status", "command_log", ["status"])
    op.create_index("ix_command_log_command_type", "command_log", ["command_type"])
    op.create_index("ix_command_log_timestamp", "command_log", [sa.text("timestamp DESC")])
    # The retry loop's work queue: only commands still in flight.
    op.create_index(
        "ix_command_log_due",
        "command_log",
        ["next_retry_at"],
        postgresql_where=sa.text("status IN ('PENDING', 'SENT', 'TIMEOUT')"),
    )

    op.create_table(
        "device_connection_log",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        _device_fk("device_connection_log"),
        sa.Column("event", _enum("connection_event_enum"), nullable=False),
        sa.Column("timestamp", _tstz(), nullable=False, server_default=_now()),
        sa.Column(
            "details", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")
        ),
        sa.PrimaryKeyConstraint("id", name="pk_device_connection_log"),
    )
    op.create_index(
        "ix_device_connection_log_device_timestamp",
        "device_connection_log",
        ["device_id", sa.text("timestamp DESC")],
    )

    # No device foreign key: many dead letters come from devices fleetwatch does not know.
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("received_at", _tstz(), nullable=False, server_default=_now()),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
    )
    op.create_index("ix_dead_letters_received_at", "dead_letters", ["received_at"])
    op.create_index("ix_dead_letters_reason_received_at", "dead_letters", ["reason", "received_at"])

    op.create_table(
        "heartbeat_cdc_state",
        _device_fk("heartbeat_cdc_state", primary_key=True),
        sa.Column("written_at", _tstz(), nullable=False),
        sa.Column("temperature", sa.REAL),
        sa.Column("humidity", sa.REAL),
        sa.Column("fan_pwm_duty", sa.SmallInteger),
        sa.Column("panic1", sa.Boolean),
        sa.Column("panic2", sa.Boolean),
        sa.Column("box_sw", sa.Boolean),
        sa.Column("siren", sa.Boolean),
        sa.Column("turret", sa.Boolean),
        sa.Column("device_state", sa.String(20)),
        sa.Column("is_online", sa.Boolean),
        sa.Column("last_device_ts", _tstz()),
        sa.Column("updated_at", _tstz(), nullable=False, server_default=_now()),
        sa.PrimaryKeyConstraint("device_id", name="pk_heartbeat_cdc_state"),
    )

    op.create_table(
        "heartbeat_counts",
        _device_fk("heartbeat_counts"),
        sa.Column("hour", _tstz(), nullable=False),
        _counter("received"),
        _counter("written"),
        sa.PrimaryKeyConstraint("device_id", "hour", name="pk_heartbeat_counts"),
    )

    # Accepted AlarmEvent sequences with a digest of their payload: an exact redelivery is
    # recognised (idempotent), a different message reusing a sequence is a replay.
    op.create_table(
        "alarm_sequences",
        _device_fk("alarm_sequences"),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("digest", sa.LargeBinary, nullable=False),
        sa.Column("received_at", _tstz(), nullable=False, server_default=_now()),
        sa.PrimaryKeyConstraint("device_id", "sequence", name="pk_alarm_sequences"),
    )
    op.create_index("ix_alarm_sequences_received_at", "alarm_sequences", ["received_at"])

    # Points committed with their batch but not yet confirmed by InfluxDB (transactional
    # outbox): replayed when InfluxDB is back, so PostgreSQL and InfluxDB never disagree.
    op.create_table(
        "influx_outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column("line", sa.Text, nullable=False),
        sa.Column("created_at", _tstz(), nullable=False, server_default=_now()),
        sa.PrimaryKeyConstraint("id", name="pk_influx_outbox"),
    )

    for table in TABLES_WITH_UPDATED_AT:
        op.execute(
            f"CREATE TRIGGER trg_{table}_updated_at BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION set_updated_at()"
        )


def downgrade() -> None:
    """Drop everything ``upgrade`` created (dropping a table drops its indexes and triggers)."""
    for table in TABLES:
        op.drop_table(table)
    op.execute("DROP FUNCTION set_updated_at()")
    for name in reversed(ENUM_TYPES):
        op.execute(f"DROP TYPE {name}")
