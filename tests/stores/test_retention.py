"""Retention deletes PostgreSQL history past its limit, in chunks, and never current state."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, Table, event, func, insert, select

from fleetwatch.settings import PostgresSettings, RetentionSettings
from stores.postgres import make_engine, purge, upgrade
from stores.postgres import schema as s
from stores.postgres.retention import rules
from stores.postgres.rollups import day_start

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LIMITS = RetentionSettings()


@pytest.fixture
def engine(pg_settings: PostgresSettings) -> Iterator[Engine]:
    """An engine on the test's own database, migrated to the current schema."""
    upgrade(pg_settings)
    engine = make_engine(pg_settings, pool_size=1)
    yield engine
    engine.dispose()


@pytest.fixture
def device_id(engine: Engine) -> int:
    """A registered device that rows can belong to."""
    with engine.begin() as conn:
        return int(
            conn.execute(
                insert(s.devices).values(mac_address="aa:bb:cc:dd:ee:01").returning(s.devices.c.id)
            ).scalar_one()
        )


def _ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def _alarm(
    device_id: int,
    when: datetime,
    resolved: datetime | None,
    alarm_type: s.AlarmType = s.AlarmType.PANIC1,
) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "timestamp": when,
        "resolved_at": resolved,
        "alarm_type": alarm_type,
        "event_state": s.EventState.ACTIVE,
        "priority": s.Priority.CRITICAL,
    }


def _command(
    device_id: int, when: datetime, status: s.CommandStatus, retry: datetime | None = None
) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "request_id": uuid.uuid4(),
        "timestamp": when,
        "command_type": s.CommandType.OUTPUT,
        "status": status,
        "next_retry_at": retry,
    }


def _rows_for(table: Table, device_id: int, when: datetime, n: int) -> dict[str, Any]:
    """A valid row of ``table`` stamped ``when`` (``n`` keeps keys unique)."""
    rows: dict[str, dict[str, Any]] = {
        "alarm_events": _alarm(device_id, when, when + timedelta(minutes=5)),
        "command_log": _command(device_id, when, s.CommandStatus.COMPLETED),
        "dead_letters": {"topic": "fleet/x/status", "payload": b"\x00", "reason": "bad_topic"}
        | {"received_at": when},
        "device_connection_log": {"device_id": device_id, "event": "connected", "timestamp": when},
        "alarm_sequences": {
            "device_id": device_id,
            "sequence": n,
            "digest": b"d",
            "received_at": when,
        },
        "heartbeat_counts": {"device_id": device_id, "hour": when, "received": 9, "written": 1},
        "heartbeat_counts_daily": {
            "device_id": device_id,
            "day": when,
            "received": 9,
            "written": 1,
        },
        "system_logs": {"timestamp": when, "level": "INFO", "category": "auth", "message": "x"},
        "device_state_snapshots": {
            "device_id": device_id,
            "device_type": "ESP32",
            "state_data": {"n": n},
            "timestamp": when,
        },
        "device_message_ids": {"device_id": device_id, "message_id": f"m{n}", "received_at": when},
    }
    return rows[table.name]


def _count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_rows_past_each_limit_are_purged_and_newer_ones_kept(
    engine: Engine, device_id: int
) -> None:
    """Every table loses exactly its row a day past the limit and keeps the one a day inside."""
    tables = [rule.table for rule in rules(LIMITS)]
    with engine.begin() as conn:
        for n, rule in enumerate(rules(LIMITS)):
            old = _rows_for(rule.table, device_id, _ago(rule.days + 1), 2 * n)
            new = _rows_for(rule.table, device_id, _ago(rule.days - 1), 2 * n + 1)
            conn.execute(insert(rule.table), [old, new])

    removed = purge(engine, LIMITS, NOW)

    assert removed == {table.name: 1 for table in tables}
    hourly_days = LIMITS.retention_heartbeat_counts_days
    for rule in rules(LIMITS):
        with engine.connect() as conn:
            kept = set(conn.execute(select(rule.ages[0])).scalars())
        expected = {_ago(rule.days - 1)}
        if rule.table is s.heartbeat_counts_daily:  # the hours were summed into days first
            expected |= {day_start(_ago(hourly_days + 1)), day_start(_ago(hourly_days - 1))}
        assert kept == expected, rule.table.name


def test_open_alarms_are_kept_however_old(engine: Engine, device_id: int) -> None:
    """An open alarm from years ago, and one resolved only recently, both survive the purge."""
    limit = LIMITS.retention_alarm_events_days
    with engine.begin() as conn:
        conn.execute(
            insert(s.alarm_events),
            [
                _alarm(device_id, _ago(3650), None),
                _alarm(device_id, _ago(limit + 30), _ago(limit - 1), alarm_type=s.AlarmType.TAMPER),
                _alarm(device_id, _ago(limit + 30), _ago(limit + 1), alarm_type=s.AlarmType.FIRE),
            ],
        )

    removed = purge(engine, LIMITS, NOW)

    assert removed[s.alarm_events.name] == 1
    with engine.connect() as conn:
        kept = set(conn.execute(select(s.alarm_events.c.alarm_type)).scalars())
    assert kept == {s.AlarmType.PANIC1, s.AlarmType.TAMPER}


def test_only_finished_commands_without_pending_retry_are_purged(
    engine: Engine, device_id: int
) -> None:
    """Old unfinished commands and a TIMEOUT awaiting its retry stay; finished ones go."""
    old = _ago(LIMITS.retention_commands_days + 1)
    finished = [
        s.CommandStatus.COMPLETED,
        s.CommandStatus.FAILED,
        s.CommandStatus.CANCELLED,
        s.CommandStatus.TIMEOUT,
    ]
    in_flight = [s.CommandStatus.PENDING, s.CommandStatus.SENT, s.CommandStatus.ACKNOWLEDGED]
    with engine.begin() as conn:
        conn.execute(
            insert(s.command_log),
            [_command(device_id, old, status) for status in finished + in_flight]
            + [_command(device_id, old, s.CommandStatus.TIMEOUT, retry=NOW)],
        )

    removed = purge(engine, LIMITS, NOW)

    assert removed[s.command_log.name] == len(finished)
    with engine.connect() as conn:
        kept = conn.execute(select(s.command_log.c.status, s.command_log.c.next_retry_at)).all()
    assert sorted(kept) == sorted(
        [(status, None) for status in in_flight] + [(s.CommandStatus.TIMEOUT, NOW)]
    )


def test_purge_deletes_in_chunks_until_done(engine: Engine) -> None:
    """2,500 expired rows go in three bounded DELETEs (1,000 + 1,000 + 500), all of them."""
    old = _ago(LIMITS.retention_dead_letters_days + 1)
    letter = {"topic": "t", "payload": b"x", "reason": "too_large", "received_at": old}
    with engine.begin() as conn:
        conn.execute(insert(s.dead_letters), [letter] * 2500)
    deletes: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.startswith("DELETE FROM dead_letters"):
            deletes.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        removed = purge(engine, LIMITS, NOW, chunk_size=1000)
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert removed[s.dead_letters.name] == 2500
    assert len(deletes) == 3
    assert _count(engine, s.dead_letters) == 0


def test_purge_refuses_a_naive_now(engine: Engine) -> None:
    """A naive datetime is refused rather than guessed at."""
    with pytest.raises(ValueError, match="timezone-aware"):
        purge(engine, LIMITS, datetime(2026, 6, 1))  # noqa: DTZ001 - the point of the test
