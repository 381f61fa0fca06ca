"""Silences and maintenance windows; grouped notifications.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

``silences`` holds notifications back for a device, a zone or a rule over a time window
(a maintenance window is one that starts later): events are still recorded, their
deliveries wait as 'held' and are released or dropped when it ends, as it says.
``notification_deliveries`` gains ``group_key`` (deliveries of one group are sent as one
message listing their devices) and ``device_label`` (the device a delivery is about).
Frozen like 0001.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create silences; add the grouping columns of deliveries."""
    op.create_table(
        "silences",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column("scope_type", sa.String(10), nullable=False),
        sa.Column("scope_value", sa.String(255), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("on_end", sa.String(10), nullable=False, server_default="release"),
        sa.Column("reason", sa.Text),
        sa.Column("created_by", sa.String(100)),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("ended_by", sa.String(100)),
        sa.Column("settled_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_silences"),
        sa.CheckConstraint(
            "scope_type IN ('device', 'zone', 'rule')", name="ck_silences_scope_known"
        ),
        sa.CheckConstraint("on_end IN ('release', 'drop')", name="ck_silences_on_end_known"),
        sa.CheckConstraint("ends_at > starts_at", name="ck_silences_window"),
    )
    op.create_index("ix_silences_ends_at", "silences", ["ends_at"])
    op.add_column("notification_deliveries", sa.Column("group_key", sa.Text))
    op.add_column("notification_deliveries", sa.Column("device_label", sa.Text))
    op.create_index(
        "ix_notification_deliveries_group_key",
        "notification_deliveries",
        ["group_key"],
        postgresql_where=sa.text("status = 'pending' AND group_key IS NOT NULL"),
    )
    op.create_index(
        "ix_notification_deliveries_address",
        "notification_deliveries",
        ["recipient_address", "sent_at"],
        postgresql_where=sa.text("status = 'sent'"),
    )


def downgrade() -> None:
    """Undo ``upgrade``."""
    op.drop_index("ix_notification_deliveries_address", "notification_deliveries")
    op.drop_index("ix_notification_deliveries_group_key", "notification_deliveries")
    op.drop_column("notification_deliveries", "device_label")
    op.drop_column("notification_deliveries", "group_key")
    op.drop_table("silences")
