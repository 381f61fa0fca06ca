"""Reports (seed 004): the daily and weekly reports, their figures and their PDF.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

Seed 004's columns, plus the period a report covers, the PDF itself (so any dashboard or
worker can serve it, wherever it runs), whom it was emailed to and when, or why not. A
scheduled report exists once per type and period (``uq_reports_scheduled``), however many
workers make it. Frozen like 0001.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create reports."""
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer, sa.Identity(always=False), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("robot_id", sa.String(50)),
        sa.Column("report_type", sa.String(50), nullable=False),
        sa.Column("data", JSONB),
        sa.Column("file_path", sa.String(500)),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("created_by", sa.String(100)),
        sa.Column("period_start", sa.DateTime(timezone=True)),
        sa.Column("period_end", sa.DateTime(timezone=True)),
        sa.Column("scheduled", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("pdf", sa.LargeBinary),
        sa.Column("sent_to", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("send_error", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_reports"),
    )
    op.create_index("ix_reports_robot_id", "reports", ["robot_id"])
    op.create_index("ix_reports_report_type", "reports", ["report_type"])
    op.create_index("ix_reports_created_at", "reports", ["created_at"])
    op.create_index("ix_reports_title", "reports", ["title"])
    op.create_index(
        "uq_reports_scheduled",
        "reports",
        ["report_type", "period_start"],
        unique=True,
        postgresql_where=sa.text("scheduled"),
    )


def downgrade() -> None:
    """Drop reports."""
    op.drop_table("reports")
