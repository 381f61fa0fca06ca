"""Retention: delete the PostgreSQL history older than its configured limit.

Each table is purged in chunks of at most ``chunk_size`` rows, one short transaction per
chunk, so a large purge (the first one after months, or after a limit was shortened) never
holds row locks for long nor builds one huge transaction; ingest keeps writing meanwhile.

What is kept, whatever its age:

* an alarm event that is still open (``resolved_at IS NULL``): it is current state, not
  history. A resolved one goes when both its ``timestamp`` and its ``resolved_at`` are older
  than the limit;
* a command that has not finished, or a TIMEOUT whose retry is still pending
  (``next_retry_at`` set).

Finished days of ``heartbeat_counts`` are rolled up into ``heartbeat_counts_daily`` first
(``stores.postgres.rollups``), so the hourly rows can be kept for less time than the daily.

``devices`` and ``device_status`` are entities, not history; ``heartbeat_cdc_state`` and
``influx_outbox`` hold work in progress: none of them is purged here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Column, ColumnElement, Engine, Table, delete, literal_column, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.sql.expression import ColumnClause

from fleetwatch.settings import RetentionSettings
from stores.errors import StoreError, StoreUnavailableError
from stores.postgres import schema
from stores.postgres.rollups import roll_up_daily_counts

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 10_000

FINISHED_COMMANDS = (
    schema.CommandStatus.COMPLETED,
    schema.CommandStatus.FAILED,
    schema.CommandStatus.CANCELLED,
    schema.CommandStatus.TIMEOUT,
)
"""Command states with nothing left to do (a TIMEOUT only when no retry is scheduled)."""


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """Rows of ``table`` go once every ``ages`` column is older than ``days`` and ``only`` holds.

    A NULL in an ``ages`` column never counts as old: the row is kept.
    """

    table: Table
    ages: tuple[Column[datetime], ...]
    days: int
    only: tuple[ColumnElement[bool], ...] = ()

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError(f"retention of {self.table.name} must be at least 1 day")
        if not self.ages:
            raise ValueError(f"retention of {self.table.name} needs a time column")
        strangers = [column.name for column in self.ages if column.table is not self.table]
        if strangers:
            raise ValueError(f"{strangers} are not columns of {self.table.name}")

    def expired(self, now: datetime) -> tuple[ColumnElement[bool], ...]:
        """The WHERE clauses selecting the rows this rule removes at ``now``."""
        cutoff = now - timedelta(days=self.days)
        return (*(column < cutoff for column in self.ages), *self.only)


def rules(settings: RetentionSettings) -> tuple[RetentionRule, ...]:
    """The retention rule of every purged table, in the order they are purged."""
    alarms, commands = schema.alarm_events, schema.command_log
    connections, counts = schema.device_connection_log, schema.heartbeat_counts
    return (
        RetentionRule(
            alarms,
            (alarms.c.timestamp, alarms.c.resolved_at),
            settings.retention_alarm_events_days,
        ),
        RetentionRule(
            commands,
            (commands.c.timestamp,),
            settings.retention_commands_days,
            (commands.c.status.in_(FINISHED_COMMANDS), commands.c.next_retry_at.is_(None)),
        ),
        RetentionRule(
            schema.dead_letters,
            (schema.dead_letters.c.received_at,),
            settings.retention_dead_letters_days,
        ),
        RetentionRule(
            connections, (connections.c.timestamp,), settings.retention_connection_log_days
        ),
        RetentionRule(
            schema.alarm_sequences,
            (schema.alarm_sequences.c.received_at,),
            settings.retention_alarm_sequences_days,
        ),
        RetentionRule(counts, (counts.c.hour,), settings.retention_heartbeat_counts_days),
        RetentionRule(
            schema.heartbeat_counts_daily,
            (schema.heartbeat_counts_daily.c.day,),
            settings.retention_heartbeat_daily_days,
        ),
        RetentionRule(
            schema.system_logs, (schema.system_logs.c.timestamp,), settings.retention_audit_days
        ),
        RetentionRule(
            schema.device_state_snapshots,
            (schema.device_state_snapshots.c.timestamp,),
            settings.retention_state_snapshots_days,
        ),
        RetentionRule(
            schema.device_message_ids,
            (schema.device_message_ids.c.received_at,),
            settings.retention_message_ids_days,
        ),
    )


def purge(
    engine: Engine,
    settings: RetentionSettings,
    now: datetime,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> dict[str, int]:
    """Delete every row older than its table's limit at ``now``; rows removed per table.

    Takes an engine, not a connection: each chunk commits on its own, which a caller's
    transaction would defeat. Stopping half-way (an error, a shutdown) leaves a consistent
    database; the next run deletes the rest.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    # Hours are summed into days before any of them can go.
    roll_up_daily_counts(engine, now)
    removed = {
        rule.table.name: _purge_table(engine, rule, now, chunk_size) for rule in rules(settings)
    }
    _log(removed.items())
    return removed


def _purge_table(engine: Engine, rule: RetentionRule, now: datetime, chunk_size: int) -> int:
    """Delete ``rule``'s expired rows chunk by chunk until a chunk comes back short."""
    table, expired = rule.table, rule.expired(now)
    ctid: ColumnClause[Any] = literal_column("ctid")
    # ctid finds each chosen row directly (a TID scan). The conditions are repeated outside:
    # a row changed since the inner SELECT saw it is deleted only if it still qualifies.
    chunk = delete(table).where(
        ctid.in_(select(ctid).select_from(table).where(*expired).limit(chunk_size)), *expired
    )
    total = 0
    while True:
        try:
            with engine.begin() as conn:
                deleted = conn.execute(chunk).rowcount
        except OperationalError as exc:
            raise StoreUnavailableError(f"PostgreSQL unreachable: {exc.orig}") from exc
        except DBAPIError as exc:
            raise StoreError(f"purging {table.name} failed: {exc.orig}") from exc
        total += deleted
        logger.debug("purged %d rows from %s (%d so far)", deleted, table.name, total)
        if deleted < chunk_size:
            return total


def _log(removed: Iterable[tuple[str, int]]) -> None:
    counts = ", ".join(f"{table}={count}" for table, count in removed)
    logger.info("retention purge removed: %s", counts)
