"""The migrated PostgreSQL schema is the one schema.py describes, and it enforces its rules."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, Table, func, inspect, select, text, update
from sqlalchemy.dialects.postgresql.base import PGInspector
from sqlalchemy.exc import IntegrityError

from fleetwatch.settings import PostgresSettings
from stores.postgres import make_engine, upgrade
from stores.postgres.schema import (
    OPEN_ALARM_INDEX,
    TABLES_WITH_UPDATED_AT,
    AlarmType,
    CommandType,
    ConnectionEvent,
    EventState,
    Priority,
    alarm_events,
    device_status,
    device_types,
    devices,
    metadata,
    notification_templates,
    rules,
    stream_offsets,
    users,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
EXPECTED_SCHEMA = "expected"


@pytest.fixture
def engine(pg_settings: PostgresSettings) -> Iterator[Engine]:
    """An engine on the test's own database, migrated to head."""
    upgrade(pg_settings)
    engine = make_engine(pg_settings, pool_size=1)
    yield engine
    engine.dispose()


def _add_device(conn: Connection, mac: str = "aa:bb:cc:dd:ee:01") -> int:
    inserted = devices.insert().values(mac_address=mac).returning(devices.c.id)
    return int(conn.execute(inserted).scalar_one())


def _rule_id(conn: Connection, device_id: int) -> object:
    """The id of a rule on the device, made the first time."""
    found = conn.execute(select(rules.c.id).where(rules.c.device_id == device_id)).scalar()
    if found is not None:
        return found
    row = {**_RULE, "name": f"rule of {device_id}", "device_id": device_id}
    return conn.execute(rules.insert().values(**row).returning(rules.c.id)).scalar_one()


_RULE: dict[str, Any] = {"kind": "panel", "metric": "temperature", "operator": "gt"}
_RULE["warning_threshold"] = 30.0


def _child_row(table: Table, device_id: int, conn: Connection | None = None) -> dict[str, Any]:
    """One valid row of a table hanging off devices (a new child table needs an entry here);
    ``conn`` makes the rows it refers to (a rule) where needed."""
    if table.name in ("rule_states", "events"):
        assert conn is not None
        extra = {"rule_id": _rule_id(conn, device_id), "subject": str(device_id)}
        if table.name == "events":
            extra |= {"severity": "warning", "message": "hot"}
        return {**extra, "device_id": device_id}
    rows: dict[str, dict[str, Any]] = {
        "rules": {**_RULE, "name": f"rule of {device_id}"},
        "device_status": {},
        "alarm_events": {
            "timestamp": T0,
            "alarm_type": AlarmType.PANIC1,
            "event_state": EventState.ACTIVE,
            "priority": Priority.CRITICAL,
        },
        "command_log": {"request_id": uuid.uuid4(), "command_type": CommandType.SYSTEM},
        "device_connection_log": {"event": ConnectionEvent.CONNECTED},
        "heartbeat_cdc_state": {"written_at": T0},
        "device_cdc_state": {"written_at": T0, "values": {}, "is_online": True},
        "robots": {"robot_id": f"tonypi_{device_id}"},
        "jobs": {
            "robot_id": f"tonypi_{device_id}",
            "job_key": "J-1",
            "start_time": T0,
            "last_report_at": T0,
        },
        "heartbeat_counts": {"hour": T0},
        "heartbeat_counts_daily": {"day": T0},
        "alarm_sequences": {"sequence": 1, "digest": b"\x01"},
        "device_tokens": {"prefix": "fwd_abc", "token_hash": f"{device_id:064d}"},
        "device_state_snapshots": {"device_type": "ESP32", "state_data": {"battery": 80}},
        "device_message_ids": {"message_id": "m-1"},
    }
    return {**rows[table.name], "device_id": device_id}


def _child_tables() -> list[Table]:
    """Every table with a foreign key to devices, from schema.py."""
    return [
        table
        for table in metadata.sorted_tables
        if any(fk.column.table is devices for fk in table.foreign_keys)
    ]


def _open_alarm(
    conn: Connection, device_id: int, alarm_type: AlarmType, output_type: int | None = None
) -> None:
    conn.execute(
        alarm_events.insert().values(
            device_id=device_id,
            timestamp=T0,
            alarm_type=alarm_type,
            event_state=EventState.ACTIVE,
            priority=Priority.HIGH,
            output_type=output_type,
        )
    )


def _describe(inspector: PGInspector, schema: str) -> dict[str, object]:
    """The catalog's view of every table and enum type in ``schema``."""
    tables = {
        name: {
            "columns": [
                {
                    "name": column["name"],
                    "type": str(column["type"].compile(dialect=inspector.dialect)),
                    "nullable": column["nullable"],
                    "default": column.get("default"),
                    "identity": column.get("identity"),
                }
                for column in inspector.get_columns(name, schema)
            ],
            "pk": inspector.get_pk_constraint(name, schema),
            "fks": [
                {**fk, "referred_schema": None} for fk in inspector.get_foreign_keys(name, schema)
            ],
            "indexes": inspector.get_indexes(name, schema),
            "uniques": inspector.get_unique_constraints(name, schema),
            "checks": inspector.get_check_constraints(name, schema),
        }
        for name in inspector.get_table_names(schema)
        if name != "alembic_version"
    }
    enums = [(enum["name"], enum["labels"]) for enum in inspector.get_enums(schema)]
    return {"tables": _unqualified(tables, schema), "enums": enums}


def _unqualified(value: object, schema: str) -> object:
    """``value`` without ``schema.`` qualifiers (found in casts in defaults and predicates)."""
    if isinstance(value, str):
        return value.replace(f"{schema}.", "")
    if isinstance(value, dict):
        return {key: _unqualified(item, schema) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_unqualified(item, schema) for item in value]
    return value


def test_migration_matches_schema_module(engine: Engine) -> None:
    """Alembic finds no column, type, default, index or key differing from schema.py."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(context, metadata) == []


def test_catalog_matches_schema_module_created_directly(engine: Engine) -> None:
    """Tables built by the migration and by schema.py's create_all read back identically."""
    # Covers what Alembic's comparison skips: CHECKs, partial-index predicates, enum labels.
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {EXPECTED_SCHEMA}"))
        translated = conn.execution_options(schema_translate_map={None: EXPECTED_SCHEMA})
        metadata.create_all(translated)
    inspector = inspect(engine)
    assert isinstance(inspector, PGInspector)
    migrated_tables = set(inspector.get_table_names("public")) - {"alembic_version"}
    assert migrated_tables == {table.name for table in metadata.sorted_tables}
    assert _describe(inspector, "public") == _describe(inspector, EXPECTED_SCHEMA)


def test_updated_at_trigger_on_exactly_the_tables_that_have_the_column(engine: Engine) -> None:
    """set_updated_at() runs BEFORE UPDATE on every table with updated_at, and on no other."""
    query = text(
        "SELECT tgrelid::regclass::text FROM pg_trigger "
        "WHERE tgfoid = 'set_updated_at'::regproc AND NOT tgisinternal"
    )
    with engine.connect() as conn:
        triggered = set(conn.execute(query).scalars())
    assert triggered == {table.name for table in TABLES_WITH_UPDATED_AT}


@pytest.mark.parametrize("table", TABLES_WITH_UPDATED_AT, ids=lambda table: table.name)
def test_update_sets_updated_at(engine: Engine, table: Table) -> None:
    """An UPDATE stamps updated_at with its transaction's time, whatever value it supplies."""
    with engine.begin() as conn:
        device_id = _add_device(conn)
        if table is device_types:
            conn.execute(table.insert().values(name="vibration_sensor"))
        elif table is notification_templates:
            conn.execute(table.insert().values(name="ops", message_template="{rule}"))
        elif table is stream_offsets:
            conn.execute(
                table.insert().values(consumer_group="g", topic="t", partition=0, next_offset=0)
            )
        elif table is users:
            conn.execute(
                table.insert().values(
                    id=uuid.uuid4(), username="ana", email="ana@example.com", password_hash="x"
                )
            )
        elif table is not devices:
            conn.execute(table.insert().values(**_child_row(table, device_id, conn)))
        before = conn.execute(select(table.c.updated_at)).scalar_one()
    with engine.begin() as conn:
        conn.execute(update(table).values(updated_at=T0))
        after = conn.execute(select(table.c.updated_at)).scalar_one()
        assert after == conn.execute(select(func.now())).scalar_one()
    assert after > before


def test_deleting_a_device_cascades_to_every_child_table(engine: Engine) -> None:
    """Deleting a device deletes its rows in every table that references it, and no others."""
    assert {table.name for table in _child_tables()} == {
        "device_status",
        "alarm_events",
        "command_log",
        "device_connection_log",
        "heartbeat_cdc_state",
        "device_cdc_state",
        "robots",
        "jobs",
        "heartbeat_counts",
        "heartbeat_counts_daily",
        "alarm_sequences",
        "rules",
        "rule_states",
        "events",
        "device_tokens",
        "device_state_snapshots",
        "device_message_ids",
    }
    with engine.begin() as conn:
        doomed, kept = _add_device(conn), _add_device(conn, "aa:bb:cc:dd:ee:02")
        for table in _child_tables():
            for device_id in (doomed, kept):
                conn.execute(table.insert().values(**_child_row(table, device_id, conn)))
    with engine.begin() as conn:
        conn.execute(devices.delete().where(devices.c.id == doomed))
    with engine.connect() as conn:
        for table in _child_tables():
            remaining = conn.execute(select(table.c.device_id)).scalars().all()
            assert remaining == [kept], table.name


@pytest.mark.parametrize(
    ("alarm_type", "output_type"),
    [(AlarmType.PANIC1, None), (AlarmType.OUTPUT_EVENT, 1)],
)
def test_second_open_alarm_of_a_kind_is_rejected(
    engine: Engine, alarm_type: AlarmType, output_type: int | None
) -> None:
    """The partial unique index refuses a second open event of one (device, type, output)."""
    with engine.begin() as conn:
        device_id = _add_device(conn)
        _open_alarm(conn, device_id, alarm_type, output_type)
    with pytest.raises(IntegrityError) as raised, engine.begin() as conn:
        _open_alarm(conn, device_id, alarm_type, output_type)
    violation = raised.value.orig
    assert isinstance(violation, psycopg.errors.UniqueViolation)
    assert violation.diag.constraint_name == OPEN_ALARM_INDEX


def test_alarm_can_reopen_once_resolved(engine: Engine) -> None:
    """After the open event is resolved, a new open event of the same kind is accepted."""
    with engine.begin() as conn:
        device_id = _add_device(conn)
        _open_alarm(conn, device_id, AlarmType.PANIC1)
        conn.execute(update(alarm_events).values(resolved_at=T0 + timedelta(seconds=30)))
        _open_alarm(conn, device_id, AlarmType.PANIC1)
        open_count = conn.execute(
            select(func.count()).where(alarm_events.c.resolved_at.is_(None))
        ).scalar_one()
    assert open_count == 1


def test_open_alarms_of_other_kinds_coexist(engine: Engine) -> None:
    """Open events of different types, or outputs of different output_type, do not collide."""
    with engine.begin() as conn:
        device_id = _add_device(conn)
        _open_alarm(conn, device_id, AlarmType.PANIC1)
        _open_alarm(conn, device_id, AlarmType.PANIC2)
        _open_alarm(conn, device_id, AlarmType.OUTPUT_EVENT, output_type=1)
        _open_alarm(conn, device_id, AlarmType.OUTPUT_EVENT, output_type=2)
        other_device = _add_device(conn, "aa:bb:cc:dd:ee:02")
        _open_alarm(conn, other_device, AlarmType.PANIC1)
        count = conn.execute(select(func.count()).select_from(alarm_events)).scalar_one()
    assert count == 5


@pytest.mark.parametrize(
    ("column", "value", "constraint"),
    [
        ("fan_pwm_duty", 101, "ck_device_status_fan_pwm_duty_range"),
        ("humidity", 140.0, "ck_device_status_humidity_range"),
        ("network_type", "lte", "ck_device_status_network_type_known"),
        ("device_state", "SLEEPING", "ck_device_status_device_state_known"),
    ],
)
def test_device_status_checks_reject_impossible_values(
    engine: Engine, column: str, value: object, constraint: str
) -> None:
    """CHECK constraints refuse out-of-range fan duty and humidity, and unknown names."""
    with engine.begin() as conn:
        device_id = _add_device(conn)
    with pytest.raises(IntegrityError, match=constraint), engine.begin() as conn:
        conn.execute(device_status.insert().values(device_id=device_id, **{column: value}))
