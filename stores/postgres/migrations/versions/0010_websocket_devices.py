"""Devices over WebSocket (seed 003): their transport and tokens, state snapshots, the ids of
messages already taken, and commands sent to many devices at once.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

``devices.transport`` says how a device reaches fleetwatch, so each ingest process sends
commands to and watches the liveness of its own transport's devices only. ``device_tokens``
keeps SHA-256 digests of the per-device tokens a WebSocket device authenticates with.
``device_state_snapshots`` is seed 003's table of every ``status`` a device sent.
``device_message_ids`` remembers the ids of recent messages, so a message a device resends
after a lost acknowledgement is recognised. ``command_log.fanout_id`` groups the commands of
one request (seed 003's ``command_id`` of a command to every device of a type). Frozen like
0001.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _tstz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _now() -> sa.TextClause:
    return sa.text("now()")


def _device_fk(table: str) -> sa.Column[int]:
    return sa.Column(
        "device_id",
        sa.Integer,
        sa.ForeignKey("devices.id", name=f"fk_{table}_device_id", ondelete="CASCADE"),
        nullable=False,
    )


def upgrade() -> None:
    """Add the columns and tables."""
    op.add_column(
        "devices", sa.Column("transport", sa.String(20), nullable=False, server_default="mqtt")
    )
    op.create_check_constraint(
        "ck_devices_transport_known", "devices", "transport IN ('mqtt', 'websocket')"
    )
    op.add_column("command_log", sa.Column("fanout_id", UUID(as_uuid=True)))
    op.create_index(
        "ix_command_log_fanout_id",
        "command_log",
        ["fanout_id"],
        postgresql_where=sa.text("fanout_id IS NOT NULL"),
    )
    op.create_table(
        "device_tokens",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        _device_fk("device_tokens"),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(100)),
        sa.Column("created_at", _tstz(), nullable=False, server_default=_now()),
        sa.Column("last_used_at", _tstz()),
        sa.Column("revoked_at", _tstz()),
        sa.PrimaryKeyConstraint("id", name="pk_device_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_device_tokens_token_hash"),
    )
    op.create_index("ix_device_tokens_device_id", "device_tokens", ["device_id"])
    op.create_table(
        "device_state_snapshots",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        _device_fk("device_state_snapshots"),
        sa.Column("device_type", sa.String(100), nullable=False),
        sa.Column("state_data", JSONB, nullable=False),
        sa.Column("timestamp", _tstz(), nullable=False, server_default=_now()),
        sa.PrimaryKeyConstraint("id", name="pk_device_state_snapshots"),
    )
    op.create_index(
        "ix_device_state_snapshots_device_timestamp",
        "device_state_snapshots",
        ["device_id", sa.text("timestamp DESC")],
    )
    op.create_index("ix_device_state_snapshots_timestamp", "device_state_snapshots", ["timestamp"])
    op.create_table(
        "device_message_ids",
        _device_fk("device_message_ids"),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("received_at", _tstz(), nullable=False, server_default=_now()),
        sa.PrimaryKeyConstraint("device_id", "message_id", name="pk_device_message_ids"),
    )
    op.create_index("ix_device_message_ids_received_at", "device_message_ids", ["received_at"])


def downgrade() -> None:
    """Drop what upgrade added."""
    for table in ("device_message_ids", "device_state_snapshots", "device_tokens"):
        op.drop_table(table)
    op.drop_index("ix_command_log_fanout_id", table_name="command_log")
    op.drop_column("command_log", "fanout_id")
    op.drop_constraint("ck_devices_transport_known", "devices")
    op.drop_column("devices", "transport")
