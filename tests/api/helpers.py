"""What the API tests set up besides the conftest's fleet: boards of seed 003's device types,
and the last audit row."""

from __future__ import annotations

from typing import Any

import psycopg

from ingest.kinds import builtin_types
from ingest.kinds.telemetry import KIND
from stores.postgres import device_types


def add_boards(db: psycopg.Connection[Any], boards: dict[str, tuple[str, bool]]) -> dict[str, int]:
    """Seed 003's built-in types and a device of one per serial (``{serial: (type, online)}``);
    each one's id."""
    builtin_types.install(db)
    ids = {}
    for serial, (type_name, online) in boards.items():
        declared = device_types.find(db, type_name)
        assert declared is not None
        assert declared.id is not None
        ids[serial] = device_types.add_device(db, KIND, serial, declared.id)
        db.execute(
            "UPDATE device_status SET is_online = %s WHERE device_id = %s", [online, ids[serial]]
        )
    return ids


def last_audit(db: psycopg.Connection[Any]) -> tuple[Any, ...]:
    """(level, username, category, message) of the newest audit row."""
    row = db.execute(
        "SELECT level, username, category, message FROM system_logs ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert row is not None
    return tuple(row)
