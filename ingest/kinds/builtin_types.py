"""The device types fleetwatch knows out of the box: seed 003's WebSocket boards.

They are ordinary declared types (``esp32_boards.toml``), installed by ``fleetwatch migrate``
when missing, so an operator may change their metrics and dead bands and keep the change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import psycopg

from ingest.kinds.telemetry import load_file, to_row
from stores.postgres import device_types

__all__ = ["BOARDS_FILE", "install"]

BOARDS_FILE: Final = Path(__file__).with_name("esp32_boards.toml")


def install(conn: psycopg.Connection[Any]) -> list[str]:
    """Declare the built-in types that are missing; the names declared."""
    declared = load_file(BOARDS_FILE)
    existing = device_types.by_name(conn, [t.name for t in declared])
    added = []
    with conn.transaction():
        for device_type in declared:
            if device_type.name not in existing:
                device_types.create(conn, to_row(device_type))
                added.append(device_type.name)
    return added
