"""The API's endpoints: reads for every signed-in person, actions through ``access.actions``.

Seed 003's paths are kept (``/devices``, ``/device-connection-history/{device}``,
``/state-history/{device}``, ``/command-logs``, ``POST /command``); a device is named by its
hostname. Rules and silences are :mod:`api.alerting_routes`', trends and storage savings
:mod:`api.analytics_routes`'; this router includes them.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from access import actions
from api import alerting_routes, analytics_routes
from api.deps import Caller, Conn
from api.errors import ApiError
from api.models import (
    Alarm,
    CancelRequest,
    CancelResult,
    CommandLog,
    CommandRequest,
    CommandResult,
    CommandSummary,
    ConnectionEvent,
    Device,
    Event,
    Note,
    Page,
    StateSnapshot,
    Toggle,
)
from api.params import ERRORS, Limit, Offset
from ingest.commands import CommandSpec
from stores.postgres import alerting_store, api_store, commands_store
from stores.postgres.commands_store import TargetFilter

__all__ = ["router"]

router = APIRouter(responses=ERRORS)


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


@router.get("/state-history/{hostname}", tags=["fleet"])
def state_history(
    conn: Conn, _: Caller, hostname: str, limit: Limit = 100, offset: Offset = 0
) -> list[StateSnapshot]:
    """A device's state snapshots (every ``status`` a WebSocket device sent), newest first."""
    if not api_store.known_device(conn, hostname):
        raise ApiError(404, f"no device {hostname!r}")
    rows = api_store.state_history(conn, hostname, limit=limit, offset=offset)
    return [StateSnapshot(**r) for r in rows]


@router.get("/command-logs", tags=["commands"])
def command_logs(
    *,
    conn: Conn,
    _: Caller,
    status: Annotated[str | None, Query(max_length=20)] = None,
    command_type: Annotated[str | None, Query(max_length=20)] = None,
    hostname: str | None = None,
    device_type: Annotated[
        str | None,
        Query(
            max_length=100,
            description="the name of the device's declared type (ESP32) or its kind "
            "(panel, telemetry, robot): a device matching either is included",
        ),
    ] = None,
    command_id: Annotated[uuid.UUID | None, Query(description="one request's commands")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[CommandLog]:
    """Commands to one device each, newest first, by status, type, device, device type or
    kind, or request."""
    rows = api_store.command_logs(
        conn, status=status, command_type=command_type, hostname=hostname,
        device_type=device_type, command_id=str(command_id) if command_id else None,
        limit=limit, offset=offset,
    )  # fmt: skip
    return Page[CommandLog](items=[CommandLog(**r) for r in rows], limit=limit, offset=offset)


@router.post("/command", tags=["commands"], status_code=201)
def send_command(conn: Conn, who: Caller, body: CommandRequest) -> CommandResult:
    """Queue a command for every device the target matches (``device_type`` and
    ``online: true``: every connected device of that type), at the level of the caller's
    role: operators DIAGNOSTIC, OUTPUT and CONFIG; admins SYSTEM and OTA too. The answer's
    ``command_id`` follows the request over all its devices (``GET /commands/{id}``)."""
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
    return CommandResult(
        command_id=str(rows[0].fanout_id),
        target_device_count=len(rows),
        commands=[CommandLog(**r) for r in logs],
    )


@router.get("/commands/{command_id}", tags=["commands"])
def get_command(
    conn: Conn, _: Caller, command_id: uuid.UUID, limit: Limit = 100, offset: Offset = 0
) -> CommandSummary:
    """One request over all its devices (seed 003's command log), with a page of its
    commands to each device."""
    summary = api_store.command_summary(conn, str(command_id))
    if summary is None:
        raise ApiError(404, f"no command {command_id}")
    rows = api_store.command_logs(conn, command_id=str(command_id), limit=limit, offset=offset)
    page = Page[CommandLog](items=[CommandLog(**r) for r in rows], limit=limit, offset=offset)
    return CommandSummary(**summary, commands=page)


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


router.include_router(alerting_routes.router)
router.include_router(analytics_routes.router)
