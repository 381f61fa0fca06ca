"""Alerting: rules, their per-subject state, events, notification templates and deliveries.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

Seed 002's rules, events, notification_templates and notification_deliveries, with seed
004's warning and critical levels on rules, hysteresis (clear threshold, clear duration), a
pending duration and a cooldown; ``rule_states`` keeps each (rule, subject) between events.
The database allows one open event per rule and subject (``uq_events_open``). Frozen like
0001.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _tstz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _now() -> sa.TextClause:
    return sa.text("now()")


def _stamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_by", sa.String(100)),
        sa.Column("updated_by", sa.String(100)),
        sa.Column("created_at", _tstz(), nullable=False, server_default=_now()),
        sa.Column("updated_at", _tstz(), nullable=False, server_default=_now()),
    ]


def _device(table: str) -> sa.Column[int]:
    return sa.Column(
        "device_id",
        sa.Integer,
        sa.ForeignKey("devices.id", name=f"fk_{table}_device_id", ondelete="CASCADE"),
    )


def _updated_at_trigger(table: str) -> None:
    op.execute(
        f"CREATE TRIGGER trg_{table}_updated_at BEFORE UPDATE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION set_updated_at()"
    )


def upgrade() -> None:
    """Create the alerting tables."""
    op.create_table(
        "notification_templates",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("subject_template", sa.Text),
        sa.Column("message_template", sa.Text, nullable=False),
        sa.Column("recipients", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("priority", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("retry_count", sa.Integer, nullable=False, server_default=sa.text("3")),
        sa.Column("retry_delay_minutes", sa.Double, nullable=False, server_default=sa.text("5.0")),
        sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.text("true")),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name="pk_notification_templates"),
        sa.UniqueConstraint("name", name="uq_notification_templates_name"),
        sa.CheckConstraint(
            "retry_count >= 0 AND retry_delay_minutes >= 0",
            name="ck_notification_templates_retries",
        ),
    )
    _updated_at_trigger("notification_templates")

    op.create_table(
        "rules",
        sa.Column(
            "id", UUID(as_uuid=True), nullable=False, server_default=sa.text("gen_random_uuid()")
        ),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("scope_type", sa.String(20), nullable=False, server_default="fleet"),
        sa.Column("scope_value", sa.String(255)),
        _device("rules"),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("operator", sa.String(3), nullable=False),
        sa.Column("warning_threshold", sa.Double),
        sa.Column("critical_threshold", sa.Double),
        sa.Column("clear_threshold", sa.Double),
        sa.Column("for_seconds", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("clear_for_seconds", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("cooldown_minutes", sa.Double, nullable=False, server_default=sa.text("15.0")),
        sa.Column("is_enabled", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("is_builtin", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("action_config", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("last_triggered_at", _tstz()),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name="pk_rules"),
        sa.UniqueConstraint("name", name="uq_rules_name"),
        sa.CheckConstraint(
            "operator IN ('gt', 'lt', 'gte', 'lte', 'eq', 'neq')", name="ck_rules_operator_known"
        ),
        sa.CheckConstraint(
            "scope_type IN ('device', 'kind', 'device_type', 'zone', 'fleet')",
            name="ck_rules_scope_known",
        ),
        sa.CheckConstraint(
            "warning_threshold IS NOT NULL OR critical_threshold IS NOT NULL",
            name="ck_rules_threshold",
        ),
        sa.CheckConstraint(
            "for_seconds >= 0 AND clear_for_seconds >= 0 AND cooldown_minutes >= 0",
            name="ck_rules_durations",
        ),
    )
    op.create_index("ix_rules_kind", "rules", ["kind", "metric"])
    op.create_index("ix_rules_device_id", "rules", ["device_id"])
    # Recording that a rule fired is not an edit of it: updated_at says when people changed it.
    op.execute(
        "CREATE TRIGGER trg_rules_updated_at BEFORE UPDATE ON rules FOR EACH ROW "
        "WHEN (OLD.last_triggered_at IS NOT DISTINCT FROM NEW.last_triggered_at) "
        "EXECUTE FUNCTION set_updated_at()"
    )

    op.create_table(
        "rule_states",
        sa.Column(
            "rule_id",
            UUID(as_uuid=True),
            sa.ForeignKey("rules.id", name="fk_rule_states_rule_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("subject", sa.String(160), nullable=False),
        _device("rule_states"),
        sa.Column("last_value", sa.Double),
        sa.Column("last_seen_at", _tstz()),
        sa.Column("pending_since", _tstz()),
        sa.Column("pending_severity", sa.String(10)),
        sa.Column("clear_since", _tstz()),
        sa.Column("event_id", sa.BigInteger),
        sa.Column("event_severity", sa.String(10)),
        sa.Column("last_triggered_at", _tstz()),
        sa.PrimaryKeyConstraint("rule_id", "subject", name="pk_rule_states"),
    )
    op.create_index("ix_rule_states_device_id", "rule_states", ["device_id"])

    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column(
            "rule_id",
            UUID(as_uuid=True),
            sa.ForeignKey("rules.id", name="fk_events_rule_id"),
            nullable=False,
        ),
        _device("events"),
        sa.Column("subject", sa.String(160), nullable=False),
        sa.Column("source", sa.String(128), nullable=False, server_default=sa.text("''")),
        sa.Column("timestamp", _tstz(), nullable=False, server_default=_now()),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("value", sa.Double),
        sa.Column("threshold", sa.Double),
        sa.Column(
            "execution_results", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")
        ),
        sa.Column("metadata", JSONB),
        sa.Column("status", sa.String(15), nullable=False, server_default="new"),
        sa.Column("acknowledged_by", sa.String(100)),
        sa.Column("acknowledged_at", _tstz()),
        sa.Column("acknowledge_note", sa.Text),
        sa.Column("resolved_by", sa.String(100)),
        sa.Column("resolved_at", _tstz()),
        sa.Column("resolve_note", sa.Text),
        sa.Column("updated_at", _tstz(), nullable=False, server_default=_now()),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.CheckConstraint(
            "severity IN ('critical', 'warning', 'info')", name="ck_events_severity_known"
        ),
        sa.CheckConstraint(
            "status IN ('new', 'acknowledged', 'resolved')", name="ck_events_status_known"
        ),
    )
    op.create_index(
        "uq_events_open",
        "events",
        ["rule_id", "subject"],
        unique=True,
        postgresql_where=sa.text("status <> 'resolved'"),
    )
    op.create_index("ix_events_status", "events", ["status", "timestamp"])
    op.create_index("ix_events_timestamp", "events", ["timestamp", "severity", "status"])
    op.create_index("ix_events_device_id", "events", ["device_id"])
    _updated_at_trigger("events")

    op.create_table(
        "notification_deliveries",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column(
            "event_id",
            sa.BigInteger,
            sa.ForeignKey(
                "events.id", name="fk_notification_deliveries_event_id", ondelete="CASCADE"
            ),
            nullable=False,
        ),
        sa.Column(
            "template_id",
            sa.BigInteger,
            sa.ForeignKey(
                "notification_templates.id",
                name="fk_notification_deliveries_template_id",
                ondelete="CASCADE",
            ),
            nullable=False,
        ),
        sa.Column("trigger", sa.String(40), nullable=False),
        sa.Column("recipient_type", sa.String(20), nullable=False),
        sa.Column("recipient_address", sa.Text, nullable=False),
        sa.Column("recipient_name", sa.String(255)),
        sa.Column("subject", sa.Text),
        sa.Column("rendered_message", sa.Text, nullable=False),
        sa.Column("status", sa.String(10), nullable=False, server_default="pending"),
        sa.Column("priority", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("attempt_count", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("max_attempts", sa.Integer, nullable=False, server_default=sa.text("4")),
        sa.Column(
            "retry_delay_seconds", sa.Double, nullable=False, server_default=sa.text("300.0")
        ),
        sa.Column("cancel_on_ack", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("next_attempt_at", _tstz(), nullable=False, server_default=_now()),
        sa.Column("claimed_until", _tstz()),
        sa.Column("last_attempt_at", _tstz()),
        sa.Column("error_message", sa.Text),
        sa.Column("sent_at", _tstz()),
        sa.Column("created_at", _tstz(), nullable=False, server_default=_now()),
        sa.PrimaryKeyConstraint("id", name="pk_notification_deliveries"),
        sa.UniqueConstraint(
            "event_id",
            "template_id",
            "trigger",
            "recipient_type",
            "recipient_address",
            name="uq_notification_deliveries_event_id",
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'held', 'sent', 'failed', 'cancelled')",
            name="ck_notification_deliveries_status_known",
        ),
    )
    op.create_index(
        "ix_notification_deliveries_due",
        "notification_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_notification_deliveries_event_id", "notification_deliveries", ["event_id"])
    op.create_index(
        "ix_notification_deliveries_status", "notification_deliveries", ["status", "created_at"]
    )


def downgrade() -> None:
    """Drop the alerting tables."""
    for table in ("notification_deliveries", "events", "rule_states", "rules"):
        op.drop_table(table)
    op.drop_table("notification_templates")
