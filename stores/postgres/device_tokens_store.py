"""Per-device tokens of devices that authenticate themselves (WebSocket): SQL only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

__all__ = ["TokenDevice", "add", "device_of", "mark_used", "revoke", "websocket_device"]


@dataclass(frozen=True, slots=True)
class TokenDevice:
    """The device a token (or a name) belongs to, as authentication needs it."""

    device_id: int
    hostname: str
    device_type: str | None
    active: bool
    transport: str
    token_id: int | None = None


_DEVICE = (
    "SELECT d.id AS device_id, d.hostname, t.name AS device_type, "
    "d.active AND d.status = 'active' AS active, d.transport {extra} "
    "FROM devices d LEFT JOIN device_types t ON t.id = d.device_type_id "
)


def websocket_device(conn: psycopg.Connection[Any], hostname: str) -> TokenDevice | None:
    """The device called ``hostname`` (the newest, if the name was reused)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            _DEVICE.format(extra="") + "WHERE d.hostname = %s ORDER BY d.id DESC LIMIT 1",
            [hostname],
        )
        row = cur.fetchone()
    return None if row is None else TokenDevice(**row)


def device_of(conn: psycopg.Connection[Any], token_hash: str) -> TokenDevice | None:
    """The device of a live (not revoked) token, by the token's digest."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            _DEVICE.format(extra=", k.id AS token_id")
            + "JOIN device_tokens k ON k.device_id = d.id "
            "WHERE k.token_hash = %s AND k.revoked_at IS NULL",
            [token_hash],
        )
        row = cur.fetchone()
    return None if row is None else TokenDevice(**row)


def mark_used(conn: psycopg.Connection[Any], token_id: int, when: datetime) -> None:
    """Note when a token last opened a connection."""
    conn.execute("UPDATE device_tokens SET last_used_at = %s WHERE id = %s", [when, token_id])


def add(
    conn: psycopg.Connection[Any], device_id: int, prefix: str, token_hash: str, by: str
) -> None:
    """Store a new token's digest; the device's transport becomes WebSocket."""
    conn.execute(
        "INSERT INTO device_tokens (device_id, prefix, token_hash, created_by) "
        "VALUES (%s, %s, %s, %s)",
        [device_id, prefix, token_hash, by],
    )
    conn.execute("UPDATE devices SET transport = 'websocket' WHERE id = %s", [device_id])


def revoke(conn: psycopg.Connection[Any], device_id: int, when: datetime) -> int:
    """Revoke every live token of a device; how many."""
    cur = conn.execute(
        "UPDATE device_tokens SET revoked_at = %s WHERE device_id = %s AND revoked_at IS NULL",
        [when, device_id],
    )
    return cur.rowcount
