"""People: users and their roles, personal API tokens, sign-in throttling, the audit trail.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

``users`` follows seed 004 (UUID id, username, email, password_hash, role, is_active) with
the last sign-in and password change. ``api_tokens`` keeps SHA-256 digests of personal
tokens. ``sign_in_throttle`` counts failed sign-ins per username as typed.
``system_logs`` is seed 004's audit trail, naming the person and the device as text so the
record outlives them. Frozen like 0001.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _tstz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _now() -> sa.TextClause:
    return sa.text("now()")


def upgrade() -> None:
    """Create the tables."""
    op.create_table(
        "users",
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("username", sa.String(50), nullable=False),
        sa.Column("email", sa.String(100), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(20), nullable=False, server_default="viewer"),
        sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("created_at", _tstz(), nullable=False, server_default=_now()),
        sa.Column("updated_at", _tstz(), nullable=False, server_default=_now()),
        sa.Column("last_sign_in_at", _tstz()),
        sa.Column("password_changed_at", _tstz()),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
        sa.UniqueConstraint("email", name="uq_users_email"),
        sa.CheckConstraint("role IN ('viewer', 'operator', 'admin')", name="ck_users_role_known"),
    )
    op.create_index("ix_users_role", "users", ["role"])
    op.execute(
        "CREATE TRIGGER trg_users_updated_at BEFORE UPDATE ON users "
        "FOR EACH ROW EXECUTE FUNCTION set_updated_at()"
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column(
            "user_id",
            UUID(as_uuid=True),
            sa.ForeignKey("users.id", name="fk_api_tokens_user_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", _tstz(), nullable=False, server_default=_now()),
        sa.Column("expires_at", _tstz()),
        sa.Column("last_used_at", _tstz()),
        sa.Column("revoked_at", _tstz()),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
        sa.UniqueConstraint("user_id", "name", name="uq_api_tokens_user_name"),
    )
    op.create_table(
        "sign_in_throttle",
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("failures", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("last_failure_at", _tstz()),
        sa.Column("retry_at", _tstz()),
        sa.Column("locked_until", _tstz()),
        sa.PrimaryKeyConstraint("username", name="pk_sign_in_throttle"),
    )
    op.create_table(
        "system_logs",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column("timestamp", _tstz(), nullable=False, server_default=_now()),
        sa.Column("level", sa.String(20), nullable=False),
        sa.Column("category", sa.String(50), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("username", sa.String(100)),
        sa.Column(
            "user_id",
            UUID(as_uuid=True),
            sa.ForeignKey("users.id", name="fk_system_logs_user_id", ondelete="SET NULL"),
        ),
        sa.Column("device", sa.String(255)),
        sa.Column("source", sa.String(100)),
        sa.Column("details", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.PrimaryKeyConstraint("id", name="pk_system_logs"),
        sa.CheckConstraint(
            "level IN ('INFO', 'WARNING', 'ERROR', 'CRITICAL')", name="ck_system_logs_level_known"
        ),
    )
    op.create_index("ix_system_logs_timestamp", "system_logs", [sa.text("timestamp DESC")])
    for column in ("category", "username", "device"):
        op.create_index(
            f"ix_system_logs_{column}", "system_logs", [column, sa.text("timestamp DESC")]
        )


def downgrade() -> None:
    """Drop the tables."""
    for table in ("system_logs", "sign_in_throttle", "api_tokens", "users"):
        op.drop_table(table)
