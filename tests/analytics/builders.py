"""Builders of hand-made report frames: a row is its defaults plus what a test says."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from analytics.alarms import EVENTS_SCHEMA
from analytics.commands import COMMANDS_SCHEMA
from analytics.fleet import DEVICES_SCHEMA
from analytics.storage import COUNTS_SCHEMA

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
"""A fixed 'now' for the unit tests."""


def _frame(
    schema: pl.Schema, defaults: dict[str, object], rows: list[dict[str, object]]
) -> pl.DataFrame:
    return pl.DataFrame([{**defaults, **row} for row in rows], schema=schema)


def device_frame(*rows: dict[str, object]) -> pl.DataFrame:
    """A devices frame; each row overrides a healthy, online, synced device."""
    defaults: dict[str, object] = {
        "device_id": 1,
        "hostname": "ESG_ALARM_0001",
        "zone": 3,
        "country": "ES",
        "firmware_version": "2.1.0",
        "is_online": True,
        "device_state": "NORMAL",
        "last_seen": T0,
        "device_synced": True,
        "sync_attempts": 0,
        "free_heap": 120_000,
        "min_heap": 90_000,
        "rssi": -60,
        "error_flags": 0,
        "error_count": 0,
        "boot_count": 1,
        "wifi_disconnects": 0,
        "mqtt_disconnects": 0,
        "disconnects": 0,
        "kind": "panel",
        "device_type": None,
        "transport": "mqtt",
    }
    return _frame(DEVICES_SCHEMA, defaults, list(rows))


def event_frame(*rows: dict[str, object]) -> pl.DataFrame:
    """An alarm events frame; each row overrides an open CRITICAL PANIC1 of device 1."""
    defaults: dict[str, object] = {
        "id": 1,
        "device_id": 1,
        "hostname": "ESG_ALARM_0001",
        "zone": 3,
        "country": "ES",
        "alarm_type": "PANIC1",
        "event_state": "ACTIVE",
        "priority": "CRITICAL",
        "output_type": None,
        "pattern_type": None,
        "duration_seconds": 0,
        "elapsed_seconds": 0,
        "timestamp": T0,
        "resolved_at": None,
        "acknowledged_at": None,
    }
    numbered = [{"id": n, **row} for n, row in enumerate(rows, start=1)]
    return _frame(EVENTS_SCHEMA, defaults, numbered)


def command_frame(*rows: dict[str, object]) -> pl.DataFrame:
    """A commands frame; each row overrides a pending SYSTEM command of device 1."""
    defaults: dict[str, object] = {
        "id": 1,
        "request_id": "00000000-0000-0000-0000-000000000000",
        "device_id": 1,
        "hostname": "ESG_ALARM_0001",
        "zone": 3,
        "country": "ES",
        "command_type": "SYSTEM",
        "status": "PENDING",
        "timestamp": T0,
        "sent_at": None,
        "acknowledged_at": None,
        "completed_at": None,
        "failed_at": None,
        "retry_count": 0,
    }
    numbered = [{"id": n, **row} for n, row in enumerate(rows, start=1)]
    return _frame(COMMANDS_SCHEMA, defaults, numbered)


def count_frame(*rows: dict[str, object]) -> pl.DataFrame:
    """A heartbeat counts frame; each row overrides device 1's counts for the hour of T0."""
    defaults: dict[str, object] = {
        "device_id": 1,
        "hostname": "ESG_ALARM_0001",
        "zone": 3,
        "country": "ES",
        "hour": T0,
        "received": 0,
        "written": 0,
        "kind": "panel",
    }
    return _frame(COUNTS_SCHEMA, defaults, list(rows))
