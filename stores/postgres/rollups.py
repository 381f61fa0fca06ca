"""Daily heartbeat counts, rolled up from the hourly ones.

Ingest adds to ``heartbeat_counts`` per device and hour of *server* receive time, so an hour
is final once it is over and its last batch committed. Housekeeping sums each finished UTC
day into ``heartbeat_counts_daily``: reports over weeks read one row per device and day
instead of 24, and the hourly rows can be purged sooner than the daily ones.

Every run recomputes the last finished day (a batch received just before midnight may commit
just after a run) and every later day not rolled up yet; rewriting a day replaces its rows,
so a rerun changes nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import DateTime, Engine, func, literal, select
from sqlalchemy.dialects.postgresql import insert

from stores.postgres.errors import sql_errors
from stores.postgres.schema import heartbeat_counts, heartbeat_counts_daily

__all__ = ["day_start", "roll_up_daily_counts", "rolled_up_until"]

logger = logging.getLogger(__name__)

_DAY = timedelta(days=1)


def day_start(moment: datetime) -> datetime:
    """00:00 UTC of ``moment``'s day."""
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def rolled_up_until(engine: Engine) -> datetime | None:
    """The end of the last day rolled up (exclusive), None before the first roll-up."""
    with sql_errors("reading the daily heartbeat counts"), engine.connect() as conn:
        last = conn.execute(select(func.max(heartbeat_counts_daily.c.day))).scalar_one()
    return None if last is None else last + _DAY


def roll_up_daily_counts(engine: Engine, now: datetime) -> int:
    """Sum every finished day not rolled up yet (and the last finished one again) into
    ``heartbeat_counts_daily``; returns the rows written."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    today = day_start(now)
    first = _first_hour_day(engine)
    if first is None:
        return 0
    done = rolled_up_until(engine)
    if done is not None:
        first = max(first, day_start(min(done, today)) - _DAY)
    written = 0
    day = first
    while day < today:  # one short transaction per day: no long lock, no huge statement
        written += _roll_up(engine, day)
        day += _DAY
    logger.info(
        "rolled up heartbeat counts of %s to %s: %d rows", first.date(), today.date(), written
    )
    return written


def _first_hour_day(engine: Engine) -> datetime | None:
    with sql_errors("reading the hourly heartbeat counts"), engine.connect() as conn:
        first = conn.execute(select(func.min(heartbeat_counts.c.hour))).scalar_one()
    return None if first is None else day_start(first)


def _roll_up(engine: Engine, day: datetime) -> int:
    h = heartbeat_counts.c
    sums = (
        select(
            h.device_id,
            literal(day, DateTime(timezone=True)).label("day"),
            func.sum(h.received).label("received"),
            func.sum(h.written).label("written"),
        )
        .where(h.hour >= day, h.hour < day + _DAY)
        .group_by(h.device_id)
    )
    statement = insert(heartbeat_counts_daily).from_select(
        ["device_id", "day", "received", "written"], sums
    )
    statement = statement.on_conflict_do_update(
        index_elements=["device_id", "day"],
        set_={"received": statement.excluded.received, "written": statement.excluded.written},
    )
    with sql_errors(f"rolling up the heartbeat counts of {day.date()}"), engine.begin() as conn:
        return len(conn.execute(statement.returning(literal(1))).all())
