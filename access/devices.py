"""Devices that authenticate themselves: per-device tokens, and who a connecting device is.

A device token (``fwd_`` and 43 URL-safe characters) is stored as a SHA-256 digest, like a
personal API token, but it names a device, not a person: it opens that device's WebSocket
and nothing else. A device presenting another device's token, or a token that is not live,
is refused, and the refusal is kept in the audit trail with the address it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import psycopg

from access import tokens
from access.audit import acting, record
from access.identity import Identity
from access.roles import Permission
from stores.postgres import device_tokens_store
from stores.postgres.schema import LogLevel

__all__ = [
    "DEVICE_PREFIX",
    "ConnectingDevice",
    "DeviceRefused",
    "identify_device",
    "issue_token",
    "new_token",
    "revoke_tokens",
]

DEVICE_PREFIX: Final = "fwd_"
_CATEGORY: Final = "device"


class DeviceRefused(PermissionError):
    """A connecting device is not let in; ``code`` is the WebSocket close code to send."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class ConnectingDevice:
    """A device its token proved: its name and declared type."""

    hostname: str
    device_type: str


def new_token() -> tokens.NewToken:
    """A new random device token, not stored anywhere yet."""
    return tokens.new_token(DEVICE_PREFIX)


def issue_token(conn: psycopg.Connection[Any], who: Identity, hostname: str) -> str:
    """A new token for the device ``hostname`` (returned once); the device is then reached
    over WebSocket. Admins only (CONFIGURE), audited.

    Raises:
        ForbiddenError: ``who`` may not configure devices.
        LookupError: no such device, or it has no declared type to announce.
    """
    device = device_tokens_store.websocket_device(conn, hostname)
    if device is None or device.device_type is None:
        raise LookupError(f"no device of a declared type called {hostname!r}")
    token = new_token()
    what = f"issue a device token for {hostname}"
    with acting(conn, who, Permission.CONFIGURE, what, category=_CATEGORY, device=hostname):
        device_tokens_store.add(conn, device.device_id, token.prefix, token.digest, who.username)
    return token.secret


def revoke_tokens(conn: psycopg.Connection[Any], who: Identity, hostname: str) -> int:
    """Revoke every live token of the device ``hostname``; how many. Admins, audited."""
    device = device_tokens_store.websocket_device(conn, hostname)
    if device is None:
        raise LookupError(f"no device called {hostname!r}")
    what = f"revoke the device tokens of {hostname}"
    with acting(conn, who, Permission.CONFIGURE, what, category=_CATEGORY, device=hostname):
        return device_tokens_store.revoke(conn, device.device_id, datetime.now(UTC))


def identify_device(
    conn: psycopg.Connection[Any], claimed: str, token: str, *, source: str | None
) -> ConnectingDevice:
    """The device ``claimed`` if ``token`` is its live token; else DeviceRefused (audited).

    4401: no live token was presented. 4403: the token is another device's, or the device
    is retired or not a WebSocket device.
    """
    found = None
    if tokens.looks_like_token(token, DEVICE_PREFIX):
        found = device_tokens_store.device_of(conn, tokens.digest(token))
    if found is None:
        _refuse(conn, claimed, source, "no live device token", {})
        raise DeviceRefused(4401, "send the device's token: Authorization: Bearer fwd_...")
    if found.hostname != claimed:
        details: dict[str, object] = {"credentials_of": found.hostname}
        _refuse(conn, claimed, source, f"{found.hostname}'s token used as {claimed}", details)
        raise DeviceRefused(4403, "this token belongs to another device")
    if not found.active or found.transport != "websocket" or found.device_type is None:
        _refuse(conn, claimed, source, "device retired or not a WebSocket device", {})
        raise DeviceRefused(4403, "this device may not connect")
    if found.token_id is not None:
        device_tokens_store.mark_used(conn, found.token_id, datetime.now(UTC))
    return ConnectingDevice(found.hostname, found.device_type)


def _refuse(
    conn: psycopg.Connection[Any],
    claimed: str,
    source: str | None,
    why: str,
    details: dict[str, object],
) -> None:
    with conn.transaction():
        record(
            conn,
            category=_CATEGORY,
            message=f"refused a WebSocket connection as {claimed[:60]}: {why}",
            level=LogLevel.WARNING,
            device=claimed[:255],
            source=source,
            details=details,
        )
