"""Reading the InfluxDB outbox table from tests."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg


def outbox_size(db: psycopg.Connection[Any]) -> int:
    """Points committed but not yet confirmed by InfluxDB."""
    row = db.execute("SELECT count(*) FROM influx_outbox").fetchone()
    return int(row[0]) if row else 0


async def outbox_drained(db: psycopg.Connection[Any], timeout_s: float = 30.0) -> None:
    """Wait until the outbox is empty; the drainer signals nothing, so this polls."""
    async with asyncio.timeout(timeout_s):
        while outbox_size(db):  # noqa: ASYNC110 - no event to wait on
            await asyncio.sleep(0.1)
