"""What people do to the fleet, each checked against their role and recorded with them.

The dashboard and the CLI call these and nothing else to act, so one table of permissions
(:mod:`access.roles`) and one audit trail cover both. Each runs in one transaction of the
given connection (which must not be in one already), together with its audit row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import psycopg

from access.audit import acting
from access.identity import Identity
from access.roles import Permission, command_level
from alerting import manage
from alerting.rules import Rule
from ingest.command_api import queue_commands
from ingest.commands import CommandSpec
from stores.postgres import alerting_store, commands_store
from stores.postgres.commands_store import CommandRow, TargetFilter

__all__ = [
    "acknowledge_alarm",
    "acknowledge_event",
    "add_silence",
    "cancel_commands",
    "end_silence",
    "resolve_alarm",
    "resolve_event",
    "retry_delivery",
    "save_rule",
    "save_template",
    "send_command",
    "set_rule_enabled",
]

_SYSTEM_TYPES: Final = frozenset({"SYSTEM", "OTA"})


def _hostname(conn: psycopg.Connection[Any], table: str, row_id: int) -> str | None:
    # The audit row names the device; table is one of two constants below.
    found = conn.execute(
        f"SELECT d.hostname FROM {table} x JOIN devices d ON d.id = x.device_id "  # noqa: S608
        "WHERE x.id = %s",
        [row_id],
    ).fetchone()
    return str(found[0]) if found else None


def _attend(
    conn: psycopg.Connection[Any],
    who: Identity,
    what: tuple[str, str, str],
    row_id: int,
    note: str | None,
    *,
    step: Callable[[psycopg.Connection[Any], int, str, str | None], bool],
) -> bool:
    """Acknowledge or resolve one alarm or event: ``what`` is (verb, category, table)."""
    verb, category, table = what
    device = _hostname(conn, table, row_id)
    message = f"{verb} {category} {row_id}"
    with acting(
        conn, who, Permission.ACKNOWLEDGE, message, category=category, device=device
    ) as act:
        act.details = {"note": note}
        return step(conn, row_id, who.username, note)


def acknowledge_alarm(
    conn: psycopg.Connection[Any], who: Identity, alarm_id: int, note: str | None
) -> bool:
    """Acknowledge a panel alarm (open, or over but unacknowledged); False if it was."""
    what = ("acknowledge", "alarm", "alarm_events")
    return _attend(conn, who, what, alarm_id, note, step=alerting_store.acknowledge_alarm)


def resolve_alarm(
    conn: psycopg.Connection[Any], who: Identity, alarm_id: int, note: str | None
) -> bool:
    """Close an open panel alarm by hand; False if it was closed already."""
    what = ("resolve", "alarm", "alarm_events")
    return _attend(conn, who, what, alarm_id, note, step=alerting_store.resolve_alarm)


def acknowledge_event(
    conn: psycopg.Connection[Any], who: Identity, event_id: int, note: str | None
) -> bool:
    """Acknowledge a new rule event (its escalation stops); False if it was not new."""
    what = ("acknowledge", "event", "events")
    return _attend(conn, who, what, event_id, note, step=alerting_store.acknowledge_event)


def resolve_event(
    conn: psycopg.Connection[Any], who: Identity, event_id: int, note: str | None
) -> bool:
    """Resolve a rule event by hand; False if it was resolved already."""
    what = ("resolve", "event", "events")
    return _attend(conn, who, what, event_id, note, step=alerting_store.resolve_by_person)


def _command_permission(command_type: str) -> Permission:
    return Permission.COMMAND_SYSTEM if command_type in _SYSTEM_TYPES else Permission.COMMAND


def send_command(
    conn: psycopg.Connection[Any],
    who: Identity,
    spec: CommandSpec,
    target: TargetFilter,
    *,
    max_retries: int | None = None,
    expires_in: timedelta | None = None,
) -> list[CommandRow]:
    """Queue ``spec`` for every device ``target`` matches, at the level of ``who``'s role.

    Raises:
        ForbiddenError: the role may not send this command type.
        CommandError: no device matches.
    """
    what = f"send {spec.kind} ({spec.command_type})"
    permission = _command_permission(spec.command_type)
    with acting(conn, who, permission, what, category="command") as act:
        rows = queue_commands(
            conn,
            spec,
            target,
            caller_level=command_level(who.role),
            initiated_by=who.username,
            max_retries=max_retries,
            expires_in=expires_in,
        )
        hosts = sorted({row.hostname or "?" for row in rows})
        act.device = hosts[0] if len(hosts) == 1 else None
        act.details = {
            "payload": spec.as_json(),
            "command_id": rows[0].fanout_id,
            "devices": len(rows),
            "hostnames": hosts[:50],
            "request_ids": [str(row.request_id) for row in rows[:50]],
        }
    return rows


def cancel_commands(
    conn: psycopg.Connection[Any], who: Identity, request_ids: Sequence[str]
) -> list[str]:
    """Cancel open commands; returns those cancelled.

    Raises:
        ForbiddenError: a command is of a type the role may not send (none is cancelled).
    """
    found = commands_store.by_request_ids(conn, list(request_ids))
    types = {row.command_type for row in found.values()}
    permission = Permission.COMMAND_SYSTEM if types & _SYSTEM_TYPES else Permission.COMMAND
    hosts = sorted({row.hostname or "?" for row in found.values()})
    what = f"cancel {len(request_ids)} command(s)"
    device = hosts[0] if len(hosts) == 1 else None
    with acting(conn, who, permission, what, category="command", device=device) as act:
        done = commands_store.cancel(conn, list(request_ids), datetime.now(UTC), who.username)
        act.details = {"cancelled": done, "types": sorted(types)}
    return done


def save_rule(
    conn: psycopg.Connection[Any], who: Identity, rule: Rule, *, previous: str | None = None
) -> Rule:
    """Check and store a new rule, or replace the one called ``previous``."""
    what = f"{'edit' if previous else 'add'} rule {rule.name}"
    with acting(conn, who, Permission.EDIT_RULES, what, category="rule") as act:
        act.details = {"condition": rule.describe()}
        return manage.save_rule(conn, rule, who.username, previous=previous)


def set_rule_enabled(
    conn: psycopg.Connection[Any], who: Identity, name: str, *, enabled: bool
) -> bool:
    """Enable or disable a rule; True (NotFoundError when there is none)."""
    what = f"{'enable' if enabled else 'disable'} rule {name}"
    with acting(conn, who, Permission.EDIT_RULES, what, category="rule"):
        alerting_store.update_rule(conn, name, {"is_enabled": enabled}, who.username)
    return True


def save_template(
    conn: psycopg.Connection[Any], who: Identity, row: Mapping[str, Any], *, replace: bool
) -> int:
    """Store a notification template (``replace``: overwrite the one of that name)."""
    what = f"{'edit' if replace else 'add'} template {row['name']}"
    with acting(conn, who, Permission.EDIT_RULES, what, category="template") as act:
        act.details = {"recipients": row.get("recipients")}
        return alerting_store.save_template(conn, row, who.username, replace=replace)


def add_silence(conn: psycopg.Connection[Any], who: Identity, row: Mapping[str, Any]) -> int:
    """Store a silence (or maintenance window); its id."""
    what = f"silence {row['scope_type']} {row['scope_value']}"
    device = str(row["scope_value"]) if row["scope_type"] == "device" else None
    with acting(conn, who, Permission.EDIT_RULES, what, category="silence", device=device) as act:
        act.details = {
            "starts_at": str(row["starts_at"]),
            "ends_at": str(row["ends_at"]),
            "reason": row.get("reason"),
        }
        return alerting_store.add_silence(conn, {**row, "created_by": who.username})


def end_silence(conn: psycopg.Connection[Any], who: Identity, silence_id: int) -> None:
    """End a silence now."""
    with acting(conn, who, Permission.EDIT_RULES, f"end silence {silence_id}", category="silence"):
        alerting_store.end_silence(conn, silence_id, who.username)


def retry_delivery(conn: psycopg.Connection[Any], who: Identity, delivery_id: int) -> bool:
    """Queue a failed or cancelled notification again now; True (NotFoundError if none)."""
    what = f"retry delivery {delivery_id}"
    with acting(conn, who, Permission.EDIT_RULES, what, category="notification"):
        alerting_store.retry_delivery(conn, delivery_id)
    return True
