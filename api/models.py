"""The API's request and response bodies (its OpenAPI schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

__all__ = [
    "Alarm", "CancelRequest", "CancelResult", "CommandLog", "CommandRequest", "CommandResult",
    "ConnectionEvent", "Device", "Event", "Note", "Page", "Target", "Toggle",
]  # fmt: skip

T = TypeVar("T")
MAX_PAGE = 1000


class Page(BaseModel, Generic[T]):
    """A page of a list: ask for the next one with ``offset`` + ``limit``."""

    items: list[T]
    limit: int
    offset: int


class Device(BaseModel):
    """An active device and its condition now."""

    hostname: str | None
    kind: str
    device_type: str | None
    zone: int | None
    country: str | None
    name: str | None
    latitude: float | None
    longitude: float | None
    is_online: bool | None
    last_seen: datetime | None
    firmware: str | None
    device_state: str | None
    open_alarms: int


class ConnectionEvent(BaseModel):
    """A device connected, disconnected or timed out."""

    id: int
    event: str
    timestamp: datetime
    details: dict[str, Any]


class Alarm(BaseModel):
    """A panel alarm, and whether a person acknowledged it."""

    id: int
    hostname: str | None
    alarm_type: str
    event_state: str
    priority: str
    timestamp: datetime
    resolved_at: datetime | None
    acknowledged: bool
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    notes: str | None


class Event(BaseModel):
    """An event a rule raised."""

    id: int
    rule: str
    hostname: str | None
    severity: str
    status: str
    message: str
    value: float | None
    timestamp: datetime
    acknowledged_by: str | None
    resolved_at: datetime | None


class CommandLog(BaseModel):
    """A command to one device and where it stands."""

    request_id: str
    hostname: str | None
    kind: str
    command_type: str
    command_data: dict[str, Any] | None
    auth_level: int | None
    status: str
    created_at: datetime
    sent_at: datetime | None
    acknowledged_at: datetime | None
    completed_at: datetime | None
    failed_at: datetime | None
    response_code: int | None
    error_message: str | None
    retry_count: int
    initiated_by: str | None


class Note(BaseModel):
    """Why (recorded with the acknowledgement or resolution)."""

    note: str | None = Field(default=None, max_length=2000)


class Target(BaseModel):
    """Which devices: named ones, a filter, or every active device (said explicitly)."""

    hostnames: list[str] = Field(default_factory=list, max_length=10_000)
    zone: int | None = None
    country: str | None = Field(default=None, max_length=3)
    firmware: str | None = Field(default=None, max_length=16)
    online: bool | None = None
    every_device: bool = False


class CommandRequest(BaseModel):
    """A command: its payload kind (reboot, output_control, ...), values, and targets."""

    kind: str = Field(max_length=40)
    payload: dict[str, Any] = Field(default_factory=dict)
    target: Target
    max_retries: int | None = Field(default=None, ge=0, le=20)
    expires_in_s: float | None = Field(default=None, gt=0, le=7 * 86_400)


class CommandResult(BaseModel):
    """What was queued: one command per device."""

    target_device_count: int
    commands: list[CommandLog]


class CancelRequest(BaseModel):
    """Commands to cancel, by request id."""

    request_ids: list[str] = Field(min_length=1, max_length=1000)


class CancelResult(BaseModel):
    """Which of them were cancelled (the rest were unknown or finished)."""

    cancelled: list[str]


class Toggle(BaseModel):
    """Whether something was changed (False: it was in that state already)."""

    changed: bool
