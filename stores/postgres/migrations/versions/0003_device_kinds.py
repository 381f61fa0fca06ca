"""Devices of several kinds: device types with declared metrics (seed 002) and their CDC state.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

``devices`` gains ``kind`` (every existing row is a 'panel'), a serial number, a name, a
status and a device type; the MAC is required of panels only. ``device_types`` and
``device_type_metrics`` declare what a telemetry device reports, ``device_cdc_state`` keeps
the CDC reference of such devices. Frozen like 0001.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _tstz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _now() -> sa.TextClause:
    return sa.text("now()")


def _updated_at_trigger(table: str) -> None:
    op.execute(
        f"CREATE TRIGGER trg_{table}_updated_at BEFORE UPDATE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION set_updated_at()"
    )


def upgrade() -> None:
    """Create the device type tables, widen ``devices`` and add the generic CDC state."""
    op.create_table(
        "device_types",
        sa.Column("id", UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()")),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("auto_register", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("created_at", _tstz(), nullable=False, server_default=_now()),
        sa.Column("updated_at", _tstz(), nullable=False, server_default=_now()),
        sa.PrimaryKeyConstraint("id", name="pk_device_types"),
        sa.UniqueConstraint("name", name="uq_device_types_name"),
    )
    _updated_at_trigger("device_types")
    op.create_table(
        "device_type_metrics",
        sa.Column(
            "device_type_id",
            UUID(as_uuid=True),
            sa.ForeignKey(
                "device_types.id",
                ondelete="CASCADE",
                name="fk_device_type_metrics_device_type_id",
            ),
            nullable=False,
        ),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("position", sa.SmallInteger, nullable=False),
        sa.Column("unit", sa.String(50), nullable=False, server_default=sa.text("''")),
        sa.Column("value_type", sa.String(5), nullable=False, server_default="float"),
        sa.Column("metric_min", sa.Numeric(15, 4)),
        sa.Column("metric_max", sa.Numeric(15, 4)),
        sa.Column("dead_band", sa.Double),
        sa.Column("is_event", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("description", sa.Text),
        sa.PrimaryKeyConstraint("device_type_id", "name", name="pk_device_type_metrics"),
        sa.CheckConstraint(
            "name ~ '^[a-z][a-z0-9_]*$'", name="ck_device_type_metrics_name_identifier"
        ),
        sa.CheckConstraint(
            "value_type IN ('float', 'int', 'bool')",
            name="ck_device_type_metrics_value_type_known",
        ),
        sa.CheckConstraint(
            "metric_min IS NULL OR metric_max IS NULL OR metric_min <= metric_max",
            name="ck_device_type_metrics_range_ordered",
        ),
        sa.CheckConstraint(
            "(value_type = 'bool') = (dead_band IS NULL) AND (dead_band IS NULL OR dead_band > 0)",
            name="ck_device_type_metrics_dead_band_for_numbers",
        ),
    )

    op.add_column(
        "devices", sa.Column("kind", sa.String(20), nullable=False, server_default="panel")
    )
    op.alter_column("devices", "mac_address", nullable=True)
    op.add_column("devices", sa.Column("serial_number", sa.String(100)))
    op.add_column(
        "devices",
        sa.Column(
            "device_type_id",
            UUID(as_uuid=True),
            sa.ForeignKey("device_types.id", ondelete="RESTRICT", name="fk_devices_device_type_id"),
        ),
    )
    op.add_column("devices", sa.Column("name", sa.String(255)))
    op.add_column(
        "devices", sa.Column("status", sa.String(20), nullable=False, server_default="active")
    )
    op.create_unique_constraint("uq_devices_serial_number", "devices", ["serial_number"])
    op.create_check_constraint(
        "ck_devices_kind_identifier", "devices", "kind ~ '^[a-z][a-z0-9_]*$'"
    )
    op.create_check_constraint(
        "ck_devices_panel_has_mac", "devices", "kind <> 'panel' OR mac_address IS NOT NULL"
    )
    op.create_check_constraint(
        "ck_devices_telemetry_has_type",
        "devices",
        "kind <> 'telemetry' OR (serial_number IS NOT NULL AND device_type_id IS NOT NULL)",
    )
    op.create_check_constraint(
        "ck_devices_status_known", "devices", "status IN ('active', 'inactive', 'error')"
    )
    op.create_index("ix_devices_kind", "devices", ["kind"])
    op.create_index("ix_devices_device_type_id", "devices", ["device_type_id"])

    op.create_table(
        "device_cdc_state",
        sa.Column(
            "device_id",
            sa.Integer,
            sa.ForeignKey("devices.id", ondelete="CASCADE", name="fk_device_cdc_state_device_id"),
            nullable=False,
        ),
        sa.Column("written_at", _tstz(), nullable=False),
        sa.Column("values", JSONB, nullable=False),
        sa.Column("is_online", sa.Boolean, nullable=False),
        sa.Column("last_device_ts", _tstz()),
        sa.Column("updated_at", _tstz(), nullable=False, server_default=_now()),
        sa.PrimaryKeyConstraint("device_id", name="pk_device_cdc_state"),
    )
    _updated_at_trigger("device_cdc_state")


def downgrade() -> None:
    """Undo ``upgrade``; refused while devices of another kind than 'panel' exist."""
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM devices WHERE kind <> 'panel') THEN "
        "RAISE EXCEPTION 'devices of other kinds than panel exist: delete them first'; "
        "END IF; END $$"
    )
    op.drop_table("device_cdc_state")
    op.drop_index("ix_devices_device_type_id", table_name="devices")
    op.drop_index("ix_devices_kind", table_name="devices")
    for name in ("status_known", "telemetry_has_type", "panel_has_mac", "kind_identifier"):
        op.drop_constraint(f"ck_devices_{name}", "devices", type_="check")
    op.drop_constraint("uq_devices_serial_number", "devices", type_="unique")
    for column in ("status", "name", "device_type_id", "serial_number", "kind"):
        op.drop_column("devices", column)
    op.alter_column("devices", "mac_address", nullable=False)
    op.drop_table("device_type_metrics")
    op.drop_table("device_types")
