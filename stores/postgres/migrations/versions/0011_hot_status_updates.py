"""Status rows updated in place: no index on the columns every message changes, room on each
page for the new row version, and the CDC guard kept in the status row.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

Every device message moves ``device_status.last_seen``. With an index on it, each update
writes a new entry into every index of the table; without one, PostgreSQL can update the row
on its own page (a HOT update) and leave the indexes alone. The liveness sweep, the only
reader that filtered on ``last_seen``, reads the table whole instead (a sequential scan of a
few megabytes per 100,000 devices, every few seconds). A fill factor below 100 leaves the
room on each page that a HOT update needs; ``heartbeat_counts`` (one row per device and
hour, updated by every heartbeat) gets the same.

``device_status.last_device_ts`` is the newest device timestamp ingest processed for the
device: the redelivery guard of its CDC history. It used to live only beside the CDC
reference, which then had to be rewritten for every heartbeat; now the reference is written
when it changes (a point was written) and the guard travels with the status update each
message makes anyway. Frozen like 0001.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

STATUS_FILLFACTOR = 70
COUNTS_FILLFACTOR = 80


def upgrade() -> None:
    """Drop the last_seen indexes, lower the fill factors, add the guard column."""
    op.drop_index("ix_device_status_last_seen", table_name="device_status")
    op.drop_index("ix_device_status_online", table_name="device_status")
    op.add_column("device_status", sa.Column("last_device_ts", sa.DateTime(timezone=True)))
    op.execute(
        "UPDATE device_status s SET last_device_ts = c.last_device_ts "
        "FROM heartbeat_cdc_state c WHERE c.device_id = s.device_id"
    )
    op.execute(f"ALTER TABLE device_status SET (fillfactor = {STATUS_FILLFACTOR})")
    op.execute(f"ALTER TABLE heartbeat_counts SET (fillfactor = {COUNTS_FILLFACTOR})")


def downgrade() -> None:
    """Put back what upgrade changed."""
    op.execute("ALTER TABLE heartbeat_counts RESET (fillfactor)")
    op.execute("ALTER TABLE device_status RESET (fillfactor)")
    op.execute(
        "UPDATE heartbeat_cdc_state c SET last_device_ts = s.last_device_ts "
        "FROM device_status s WHERE s.device_id = c.device_id "
        "AND s.last_device_ts > c.last_device_ts"
    )
    op.drop_column("device_status", "last_device_ts")
    op.create_index(
        "ix_device_status_online", "device_status", ["is_online", sa.text("last_seen DESC")]
    )
    op.create_index("ix_device_status_last_seen", "device_status", [sa.text("last_seen DESC")])
