"""The API's endpoints: reads for every signed-in person, actions through ``access.actions``.

Seed 003's paths are kept (``/devices``, ``/device-connection-history/{device}``,
``/command-logs``, ``POST /command``); a device is named by its hostname.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from access import actions
from api.deps import Caller, Conn
from api.errors import ApiError, ErrorResponse
from api.models import (
    MAX_PAGE,
    Alarm,
    CancelRequest,
    CancelResult,
    CommandLog,
    CommandRequest,
    CommandResult,
    ConnectionEvent,
    Device,
    Event,
    Note,
    Page,
    Toggle,
)
from ingest.commands import CommandSpec
from stores.postgres import alerting_store, api_store, commands_store
from stores.postgres.commands_store import TargetFilter

__all__ = ["router"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 413, 422, 429, 503)
}
router = APIRouter(responses=_ERRORS)

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


@router.get("/devices", tags=["fleet"])
def list_devices(
    *,
    conn: Conn,
    _: Caller,
    kind: Annotated[str | None, Query(max_length=20)] = None,
    zone: int | None = None,
    country: Annotated[str | None, Query(max_length=3)] = None,
    online: bool | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[Device]:
    """Active devices and their condition now, by hostname."""
    rows = api_store.devices(
        conn, kind=kind, zone=zone, country=country, online=online, limit=limit, offset=offset
    )
    return Page[Device](items=[Device(**r) for r in rows], limit=limit, offset=offset)


@router.get("/devices/{hostname}", tags=["fleet"])
def get_device(conn: Conn, _: Caller, hostname: str) -> Device:
    """One active device."""
    rows = api_store.devices(conn, hostname=hostname, limit=1)
    if not rows:
        raise ApiError(404, f"no active device {hostname!r}")
    return Device(**rows[0])


@router.get("/device-connection-history/{hostname}", tags=["fleet"])
def connection_history(
    conn: Conn, _: Caller, hostname: str, limit: Limit = 100
) -> list[ConnectionEvent]:
    """A device's connection events (connected, disconnected, timeout), newest first."""
    return [ConnectionEvent(**r) for r in api_store.connection_history(conn, hostname, limit=limit)]


@router.get("/alarms", tags=["alarms and events"])
def list_alarms(
    conn: Conn,
    _: Caller,
    open_only: Annotated[bool, Query(alias="open")] = True,
    hostname: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[Alarm]:
    """Panel alarms, newest first (open ones by default; ``open=false`` for all)."""
    rows = api_store.alarms(
        conn, open_only=open_only, hostname=hostname, limit=limit, offset=offset
    )
    return Page[Alarm](items=[Alarm(**r) for r in rows], limit=limit, offset=offset)


@router.post("/alarms/{alarm_id}/acknowledge", tags=["alarms and events"])
def acknowledge_alarm(conn: Conn, who: Caller, alarm_id: int, body: Note) -> Toggle:
    """Acknowledge a panel alarm (operators and admins)."""
    return Toggle(changed=actions.acknowledge_alarm(conn, who, alarm_id, body.note))


@router.post("/alarms/{alarm_id}/resolve", tags=["alarms and events"])
def resolve_alarm(conn: Conn, who: Caller, alarm_id: int, body: Note) -> Toggle:
    """Close an open panel alarm by hand (operators and admins)."""
    return Toggle(changed=actions.resolve_alarm(conn, who, alarm_id, body.note))


@router.get("/events", tags=["alarms and events"])
def list_events(
    conn: Conn,
    _: Caller,
    open_only: Annotated[bool, Query(alias="open")] = True,
    limit: Limit = 100,
) -> list[Event]:
    """Rule events, newest first (not resolved by default)."""
    rows = alerting_store.list_events(conn, open_only=open_only, limit=limit)
    return [Event.model_validate({name: r.get(name) for name in Event.model_fields}) for r in rows]


@router.post("/events/{event_id}/acknowledge", tags=["alarms and events"])
def acknowledge_event(conn: Conn, who: Caller, event_id: int, body: Note) -> Toggle:
    """Acknowledge a new rule event, stopping its escalation (operators and admins)."""
    return Toggle(changed=actions.acknowledge_event(conn, who, event_id, body.note))


@router.post("/events/{event_id}/resolve", tags=["alarms and events"])
def resolve_event(conn: Conn, who: Caller, event_id: int, body: Note) -> Toggle:
    """Resolve a rule event by hand (operators and admins)."""
    return Toggle(changed=actions.resolve_event(conn, who, event_id, body.note))


@router.get("/command-logs", tags=["commands"])
def command_logs(
    *,
    conn: Conn,
    _: Caller,
    status: Annotated[str | None, Query(max_length=20)] = None,
    command_type: Annotated[str | None, Query(max_length=20)] = None,
    hostname: str | None = None,
    device_type: Annotated[str | None, Query(max_length=20, description="device kind")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[CommandLog]:
    """Commands, newest first, by status, type, device or kind of device."""
    rows = api_store.command_logs(
        conn, status=status, command_type=command_type, hostname=hostname, kind=device_type,
        limit=limit, offset=offset,
    )  # fmt: skip
    return Page[CommandLog](items=[CommandLog(**r) for r in rows], limit=limit, offset=offset)


@router.post("/command", tags=["commands"], status_code=201)
def send_command(conn: Conn, who: Caller, body: CommandRequest) -> CommandResult:
    """Queue a command for every device the target matches, at the level of the caller's
    role: operators DIAGNOSTIC, OUTPUT and CONFIG; admins SYSTEM and OTA too."""
    try:
        spec = CommandSpec(body.kind, body.payload)
        target = TargetFilter(**body.target.model_dump())
    except ValueError as exc:
        raise ApiError(422, str(exc)) from exc
    expires = timedelta(seconds=body.expires_in_s) if body.expires_in_s else None
    rows = actions.send_command(
        conn, who, spec, target, max_retries=body.max_retries, expires_in=expires
    )
    queued = [str(r.request_id) for r in rows]
    logs = api_store.command_logs(conn, request_ids=queued, limit=len(queued))
    return CommandResult(target_device_count=len(rows), commands=[CommandLog(**r) for r in logs])


@router.post("/commands/cancel", tags=["commands"])
def cancel_commands(conn: Conn, who: Caller, body: CancelRequest) -> CancelResult:
    """Cancel commands not finished yet (the caller's role must allow their type)."""
    _check_uuids(body.request_ids)
    known = commands_store.by_request_ids(conn, body.request_ids)
    unknown = sorted(set(body.request_ids) - set(known))
    if unknown:
        raise ApiError(404, "unknown request ids: " + ", ".join(unknown))
    return CancelResult(cancelled=actions.cancel_commands(conn, who, body.request_ids))


def _check_uuids(values: list[str]) -> None:
    """ApiError 422 unless every value is a UUID (a request id)."""
    try:
        for value in values:
            uuid.UUID(value)
    except ValueError as exc:
        raise ApiError(422, f"not a request id: {exc}") from exc
