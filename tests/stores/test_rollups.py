"""Housekeeping sums the finished days of the hourly heartbeat counts, idempotently."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, select, update

from fleetwatch.settings import PostgresSettings
from stores.postgres import make_engine, upgrade
from stores.postgres import schema as s
from stores.postgres.rollups import roll_up_daily_counts, rolled_up_until

DAY0 = datetime(2026, 3, 1, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.fixture
def engine(pg_settings: PostgresSettings) -> Iterator[Engine]:
    """An engine on the test's own database, migrated, with devices 1 and 2."""
    upgrade(pg_settings)
    engine = make_engine(pg_settings, pool_size=1)
    with engine.begin() as conn:
        conn.execute(
            insert(s.devices),
            [{"id": n, "mac_address": f"aa:bb:cc:dd:ee:0{n}"} for n in (1, 2)],
        )
    yield engine
    engine.dispose()


def _hours(engine: Engine, rows: list[tuple[int, datetime, int, int]]) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(s.heartbeat_counts),
            [{"device_id": d, "hour": h, "received": r, "written": w} for d, h, r, w in rows],
        )


def _daily(engine: Engine) -> dict[tuple[int, datetime], tuple[int, int]]:
    c = s.heartbeat_counts_daily.c
    with engine.connect() as conn:
        rows = conn.execute(select(c.device_id, c.day, c.received, c.written)).all()
    return {(d, day): (r, w) for d, day, r, w in rows}


def test_finished_days_are_summed_per_device_and_today_is_not(engine: Engine) -> None:
    """Hours sum into their UTC day per device; the running day waits for its end."""
    _hours(
        engine,
        [
            (1, DAY0, 360, 20),
            (1, DAY0 + 23 * H, 360, 10),
            (2, DAY0 + 5 * H, 100, 5),
            (1, DAY0 + 24 * H, 360, 12),  # day 2
            (1, DAY0 + 48 * H, 360, 15),  # day 3: today
        ],
    )
    assert rolled_up_until(engine) is None

    written = roll_up_daily_counts(engine, DAY0 + 50 * H)

    assert written == 3
    assert _daily(engine) == {
        (1, DAY0): (720, 30),
        (2, DAY0): (100, 5),
        (1, DAY0 + 24 * H): (360, 12),
    }
    assert rolled_up_until(engine) == DAY0 + 48 * H


def test_rerun_recomputes_the_last_finished_day_only(engine: Engine) -> None:
    """A late commit into yesterday is picked up on the next run; older days are not read
    again, and a rerun with nothing new changes nothing."""
    _hours(engine, [(1, DAY0, 10, 1), (1, DAY0 + 24 * H, 20, 2)])
    roll_up_daily_counts(engine, DAY0 + 49 * H)
    c = s.heartbeat_counts.c
    with engine.begin() as conn:  # late: after the roll-up, into both finished days
        for hour in (DAY0, DAY0 + 24 * H):
            conn.execute(
                update(s.heartbeat_counts)
                .where(c.hour == hour)
                .values(received=c.received + 5, written=c.written + 1)
            )

    assert roll_up_daily_counts(engine, DAY0 + 50 * H) == 1
    assert _daily(engine) == {(1, DAY0): (10, 1), (1, DAY0 + 24 * H): (25, 3)}
    assert roll_up_daily_counts(engine, DAY0 + 51 * H) == 1
    assert _daily(engine) == {(1, DAY0): (10, 1), (1, DAY0 + 24 * H): (25, 3)}


def test_nothing_to_roll_up_on_an_empty_table(engine: Engine) -> None:
    """No hourly counts, no daily rows and no error."""
    assert roll_up_daily_counts(engine, DAY0) == 0
    assert _daily(engine) == {}
