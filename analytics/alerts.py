"""Alerting reports: what needs attention now, and how notifications fare.

:func:`attention` puts the rule events not resolved yet and the panel alarms still open in
one list, most severe first, then oldest first: what an operator works through.
:func:`delivery_outcomes` counts deliveries by channel and status.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import polars as pl

__all__ = ["ATTENTION_SCHEMA", "EVENTS_SCHEMA", "attention", "delivery_outcomes"]

EVENTS_SCHEMA: Final = pl.Schema(
    {
        "id": pl.Int64(),
        "timestamp": pl.Datetime("us", "UTC"),
        "severity": pl.String(),
        "status": pl.String(),
        "rule": pl.String(),
        "hostname": pl.String(),
        "zone": pl.Int64(),
        "source": pl.String(),
        "value": pl.Float64(),
        "threshold": pl.Float64(),
        "message": pl.String(),
        "acknowledged_by": pl.String(),
        "acknowledged_at": pl.Datetime("us", "UTC"),
    }
)
"""Rule events (``alerting_store.list_events``)."""

_OPEN: Final = pl.Schema(
    {
        "origin": pl.String(),  # "rule" or "alarm"
        "id": pl.Int64(),
        "severity": pl.String(),
        "status": pl.String(),
        "what": pl.String(),
        "hostname": pl.String(),
        "zone": pl.Int64(),
        "since": pl.Datetime("us", "UTC"),
        "acknowledged_by": pl.String(),
    }
)
ATTENTION_SCHEMA: Final = pl.Schema({**_OPEN, "age_minutes": pl.Float64()})

_RANK: Final = {"critical": 0, "warning": 1, "info": 2}
# A panel alarm's priority as a severity (the built-in alarm rules map it the same way).
_PRIORITY: Final = {"CRITICAL": "critical", "HIGH": "critical", "MEDIUM": "warning", "LOW": "info"}


def attention(events: pl.DataFrame, alarms: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """Open rule events (:data:`EVENTS_SCHEMA`) and open panel alarms (``analytics.alarms``'
    events schema) as one list: severity first (critical, warning, info), then oldest first.

    An alarm whose input alarm rule raised an event appears as that event; the alarm itself
    is listed only when no open event of its device and type stands for it.
    """
    rule_rows = events.filter(pl.col("status") != "resolved").select(
        origin=pl.lit("rule"),
        id=pl.col("id"),
        severity=pl.col("severity"),
        status=pl.col("status"),
        what=pl.col("message"),
        hostname=pl.col("hostname"),
        zone=pl.col("zone"),
        since=pl.col("timestamp"),
        acknowledged_by=pl.col("acknowledged_by"),
    )
    covered = set(
        events.filter(pl.col("status") != "resolved")
        .select(pl.concat_str(["hostname", "rule"], separator="|"))
        .to_series()
        .to_list()
    )
    open_alarms = alarms.filter(pl.col("alarm_type") != "OUTPUT_EVENT").with_columns(
        key=pl.concat_str(
            [pl.col("hostname"), pl.lit("Panel alarm ") + pl.col("alarm_type")], separator="|"
        )
    )
    alarm_rows = open_alarms.filter(~pl.col("key").is_in(list(covered))).select(
        origin=pl.lit("alarm"),
        id=pl.col("id").cast(pl.Int64),
        severity=pl.col("priority").replace_strict(_PRIORITY, default="warning"),
        status=pl.when(pl.col("acknowledged_at").is_null())
        .then(pl.lit("new"))
        .otherwise(pl.lit("acknowledged")),
        what=pl.col("alarm_type") + pl.lit(" alarm (") + pl.col("event_state") + pl.lit(")"),
        hostname=pl.col("hostname"),
        zone=pl.col("zone").cast(pl.Int64),
        since=pl.col("timestamp"),
        acknowledged_by=pl.lit(None, pl.String),
    )
    both = pl.concat([rule_rows.cast(_OPEN), alarm_rows.cast(_OPEN)], how="vertical")
    return (
        both.with_columns(
            age_minutes=(pl.lit(now) - pl.col("since")).dt.total_seconds() / 60.0,
            rank=pl.col("severity").replace_strict(_RANK, default=3),
        )
        .sort(["rank", "since"])
        .select(ATTENTION_SCHEMA.names())
    )


def delivery_outcomes(deliveries: pl.DataFrame) -> pl.DataFrame:
    """Deliveries per channel and status, with how many attempts they took on average."""
    if deliveries.is_empty():
        return pl.DataFrame(
            schema={"channel": pl.String(), "status": pl.String(), "deliveries": pl.UInt32,
                    "attempts_mean": pl.Float64}
        )  # fmt: skip
    return (
        deliveries.group_by(channel="recipient_type", status="status")
        .agg(deliveries=pl.len(), attempts_mean=pl.col("attempt_count").mean())
        .sort(["channel", "status"])
    )
