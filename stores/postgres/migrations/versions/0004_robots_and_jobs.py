"""Robots and their jobs (seed 004); several CDC histories per device.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

``robots`` holds seed 004's robot columns for the ``devices`` rows of kind 'robot', ``jobs``
their jobs. ``device_cdc_state`` gains ``stream``: a robot has one history per part (battery,
performance, IMU, each servo, each sensor), each with its own CDC reference. Frozen like 0001.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


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


def _threshold(name: str, default: str) -> sa.Column[float]:
    return sa.Column(name, sa.Double, nullable=False, server_default=sa.text(default))


def _updated_at_trigger(table: str) -> None:
    op.execute(
        f"CREATE TRIGGER trg_{table}_updated_at BEFORE UPDATE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION set_updated_at()"
    )


def upgrade() -> None:
    """Create robots and jobs; key device_cdc_state by device and stream."""
    op.add_column(
        "device_cdc_state",
        sa.Column("stream", sa.String(64), nullable=False, server_default=sa.text("''")),
    )
    op.drop_constraint("pk_device_cdc_state", "device_cdc_state", type_="primary")
    op.create_primary_key("pk_device_cdc_state", "device_cdc_state", ["device_id", "stream"])

    op.create_table(
        "robots",
        _device_fk("robots", primary_key=True),
        sa.Column("robot_id", sa.String(50), nullable=False),
        sa.Column("name", sa.String(100)),
        sa.Column("description", sa.Text),
        sa.Column("location", JSONB),
        sa.Column("status", sa.String(20), nullable=False, server_default="offline"),
        sa.Column("ip_address", sa.String(45)),
        sa.Column("camera_url", sa.String(255)),
        _threshold("battery_threshold_low", "20.0"),
        _threshold("battery_threshold_critical", "10.0"),
        _threshold("temp_threshold_warning", "70.0"),
        _threshold("temp_threshold_critical", "80.0"),
        sa.Column("settings", JSONB),
        sa.Column("last_seen", _tstz()),
        sa.Column("created_at", _tstz(), nullable=False, server_default=_now()),
        sa.Column("updated_at", _tstz(), nullable=False, server_default=_now()),
        sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.PrimaryKeyConstraint("device_id", name="pk_robots"),
        sa.UniqueConstraint("robot_id", name="uq_robots_robot_id"),
        sa.CheckConstraint(
            "status IN ('online', 'offline', 'error', 'maintenance')",
            name="ck_robots_status_known",
        ),
    )
    op.create_index("ix_robots_status", "robots", ["status"])
    _updated_at_trigger("robots")

    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, sa.Identity(always=False), nullable=False),
        _device_fk("jobs"),
        sa.Column("robot_id", sa.String(50), nullable=False),
        sa.Column("job_key", sa.String(64), nullable=False),
        sa.Column("start_time", _tstz(), nullable=False),
        sa.Column("end_time", _tstz()),
        sa.Column("items_total", sa.Integer),
        sa.Column("items_done", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("percent_complete", sa.Double, nullable=False, server_default=sa.text("0.0")),
        sa.Column("last_item", JSONB),
        sa.Column("status", sa.String(20), nullable=False, server_default="active"),
        sa.Column("last_report_at", _tstz(), nullable=False),
        sa.Column("failure_reason", sa.Text),
        sa.Column("created_at", _tstz(), nullable=False, server_default=_now()),
        sa.Column("updated_at", _tstz(), nullable=False, server_default=_now()),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.UniqueConstraint("device_id", "job_key", name="uq_jobs_device_id"),
        sa.CheckConstraint(
            "status IN ('active', 'completed', 'failed')", name="ck_jobs_status_known"
        ),
        sa.CheckConstraint(
            "items_done >= 0 AND (items_total IS NULL OR items_total >= 0)", name="ck_jobs_items"
        ),
    )
    op.create_index("ix_jobs_robot_id", "jobs", ["robot_id"])
    op.create_index("ix_jobs_start_time", "jobs", ["start_time"])
    op.create_index(
        "ix_jobs_active", "jobs", ["last_report_at"], postgresql_where=sa.text("status = 'active'")
    )
    _updated_at_trigger("jobs")


def downgrade() -> None:
    """Undo ``upgrade``; the CDC references of streams other than the device's own go."""
    op.drop_table("jobs")
    op.drop_table("robots")
    op.execute("DELETE FROM device_cdc_state WHERE stream <> ''")
    op.drop_constraint("pk_device_cdc_state", "device_cdc_state", type_="primary")
    op.create_primary_key("pk_device_cdc_state", "device_cdc_state", ["device_id"])
    op.drop_column("device_cdc_state", "stream")
