"""Daily heartbeat counts, and an index on the hour of the hourly ones.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Reports of the CDC's savings over weeks read one row per device and day
(``heartbeat_counts_daily``, rolled up from ``heartbeat_counts`` by housekeeping) instead of
24; the hours not rolled up yet (today's) are found through ``ix_heartbeat_counts_hour``
instead of a scan of every device's hours. Frozen like 0001.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the daily table and the hour index."""
    op.create_table(
        "heartbeat_counts_daily",
        sa.Column(
            "device_id",
            sa.Integer,
            sa.ForeignKey(
                "devices.id",
                ondelete="CASCADE",
                name="fk_heartbeat_counts_daily_device_id",
            ),
            nullable=False,
        ),
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("written", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.PrimaryKeyConstraint("device_id", "day", name="pk_heartbeat_counts_daily"),
    )
    op.create_index("ix_heartbeat_counts_daily_day", "heartbeat_counts_daily", ["day"])
    op.create_index("ix_heartbeat_counts_hour", "heartbeat_counts", ["hour"])


def downgrade() -> None:
    """Drop what ``upgrade`` created."""
    op.drop_index("ix_heartbeat_counts_hour", table_name="heartbeat_counts")
    op.drop_table("heartbeat_counts_daily")
