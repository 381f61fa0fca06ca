"""Command success rates: how many commands worked, how often they were retried, how fast.

Every function reads a *commands frame* (:data:`COMMANDS_SCHEMA`): rows of ``command_log``
with their device's identity, as ``analytics.load.load_commands`` builds it for a period.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias, get_args

import polars as pl

from analytics._frames import (
    DEVICE_COLUMNS,
    UTC_TIME,
    count_where,
    quantile,
    require_columns,
    seconds_between,
    share,
)
from analytics.selection import AnalyticsError

__all__ = ["COMMANDS_SCHEMA", "IN_FLIGHT", "CommandDimension", "command_success"]

COMMANDS_SCHEMA: Final = pl.Schema(
    {
        "id": pl.Int64(),
        "request_id": pl.String(),
        "device_id": pl.Int64(),
        "hostname": pl.String(),
        "zone": pl.Int64(),
        "country": pl.String(),
        "command_type": pl.String(),
        "status": pl.String(),
        "timestamp": UTC_TIME,
        "sent_at": UTC_TIME,
        "acknowledged_at": UTC_TIME,
        "completed_at": UTC_TIME,
        "failed_at": UTC_TIME,
        "retry_count": pl.Int64(),
    }
)
"""One row per command: ``timestamp`` when it was queued, ``sent_at`` its latest
publication (a retry sends it again), ``retry_count`` how many times it was re-sent."""

IN_FLIGHT: Final = ("PENDING", "SENT", "ACKNOWLEDGED")
"""Statuses of commands without an outcome yet."""

CommandDimension: TypeAlias = Literal["command_type", "device", "day"]


def command_success(commands: pl.DataFrame, by: CommandDimension | None = None) -> pl.DataFrame:
    """Do commands succeed, how often are they retried, and how fast do devices answer?

    Overall (one row) or per ``command_type``, device (device_id, hostname, zone, country)
    or ``day`` (UTC day the command was queued):

    * ``total``, and per outcome ``completed``, ``failed``, ``timeout``, ``cancelled`` and
      ``in_flight`` (PENDING, SENT or ACKNOWLEDGED);
    * ``success_rate``: completed / (total - cancelled - in flight), 0-1: of the commands
      that have an outcome the device was responsible for, the share that completed (a
      TIMEOUT counts as not succeeded); null when there are none;
    * ``retries_per_command``: mean ``retry_count``;
    * ``ack_p50_s``/``ack_p95_s``: seconds from (last) sent to acknowledged;
      ``complete_p50_s``/``complete_p95_s``: from sent to completed, over completed ones.
      A response to an earlier attempt, older than the latest send, is left out.
    """
    require_columns(commands, COMMANDS_SCHEMA, "commands")
    if by is not None and by not in get_args(CommandDimension):
        raise AnalyticsError(f"cannot group commands by {by!r}")
    keys = {None: [], "device": list(DEVICE_COLUMNS), "day": ["day"]}.get(by, [by])
    status = pl.col("status")
    timed = commands.with_columns(
        day=pl.col("timestamp").dt.truncate("1d"),
        to_ack=seconds_between("sent_at", "acknowledged_at"),
        to_complete=pl.when(status == "COMPLETED").then(seconds_between("sent_at", "completed_at")),
    ).with_columns(
        pl.when(pl.col(name) >= 0).then(pl.col(name)).alias(name)
        for name in ("to_ack", "to_complete")
    )
    total = pl.len().cast(pl.Int64)
    completed = count_where(status == "COMPLETED")
    cancelled = count_where(status == "CANCELLED")
    in_flight = count_where(status.is_in(IN_FLIGHT))
    aggregates = [
        total.alias("total"),
        completed.alias("completed"),
        count_where(status == "FAILED").alias("failed"),
        count_where(status == "TIMEOUT").alias("timeout"),
        cancelled.alias("cancelled"),
        in_flight.alias("in_flight"),
        share(completed, total - cancelled - in_flight).alias("success_rate"),
        pl.col("retry_count").mean().alias("retries_per_command"),
        quantile("to_ack", 0.5).alias("ack_p50_s"),
        quantile("to_ack", 0.95).alias("ack_p95_s"),
        quantile("to_complete", 0.5).alias("complete_p50_s"),
        quantile("to_complete", 0.95).alias("complete_p95_s"),
    ]
    if not keys:
        return timed.select(aggregates)
    return timed.group_by(keys).agg(aggregates).sort(keys, nulls_last=True)
