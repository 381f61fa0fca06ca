"""Repeated notifications and recurring silences (mute timings).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

``notification_deliveries`` gains ``repeat_seconds`` (sent again that often while its event
is new: nobody acknowledged it) and ``held_by`` (the silence that held it, whose ``on_end``
says whether it is released or dropped). ``silences`` gains a daily window and weekdays
(UTC): a silence with them holds notifications only inside that window on those days, such
as nights and weekends. Frozen like 0001.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the columns."""
    op.add_column("notification_deliveries", sa.Column("repeat_seconds", sa.Double))
    op.add_column("notification_deliveries", sa.Column("held_by", sa.BigInteger))
    op.add_column("silences", sa.Column("weekdays", sa.SmallInteger))
    op.add_column("silences", sa.Column("window_start", sa.Time))
    op.add_column("silences", sa.Column("window_end", sa.Time))
    op.create_check_constraint(
        "ck_silences_window_pair",
        "silences",
        "(window_start IS NULL) = (window_end IS NULL) AND "
        "(weekdays IS NULL OR weekdays BETWEEN 1 AND 127)",
    )


def downgrade() -> None:
    """Drop the columns."""
    op.drop_constraint("ck_silences_window_pair", "silences", type_="check")
    for column in ("window_end", "window_start", "weekdays"):
        op.drop_column("silences", column)
    op.drop_column("notification_deliveries", "held_by")
    op.drop_column("notification_deliveries", "repeat_seconds")
