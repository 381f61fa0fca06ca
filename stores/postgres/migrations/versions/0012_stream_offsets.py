"""The positions of ingest workers in a partitioned stream, committed with their batches.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

Workers of a scaled-out deployment read device messages from Kafka partitions. Each batch
stores how far it read in each of its partitions in the same transaction as its writes, so a
worker that takes over a partition (after a crash or a rebalance) starts exactly after the
last committed message: nothing is skipped and nothing is applied twice. A row is also the
fence between two workers that both believe they own a partition: each batch moves the
position from the value its worker last saw, and fails if another worker moved it first.
Frozen like 0001.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create stream_offsets."""
    op.create_table(
        "stream_offsets",
        sa.Column("consumer_group", sa.String(255)),
        sa.Column("topic", sa.String(255)),
        sa.Column("partition", sa.Integer),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("consumer_group", "topic", "partition", name="pk_stream_offsets"),
        sa.CheckConstraint("partition >= 0 AND next_offset >= 0", name="ck_stream_offsets_valid"),
    )
    op.execute(
        "CREATE TRIGGER trg_stream_offsets_updated_at BEFORE UPDATE ON stream_offsets "
        "FOR EACH ROW EXECUTE FUNCTION set_updated_at()"
    )


def downgrade() -> None:
    """Drop stream_offsets."""
    op.drop_table("stream_offsets")
