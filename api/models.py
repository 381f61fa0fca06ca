"""The API's request and response bodies (its OpenAPI schemas)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, Generic, Literal, Self, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, Field, model_validator

from stores.postgres.schema import RuleOperator, RuleScope, SilenceEnd, SilenceScope

__all__ = [
    "WEEKDAYS", "Alarm", "CancelRequest", "CancelResult", "CommandLog", "CommandRequest",
    "CommandResult", "CommandSummary", "ConnectionEvent", "Device", "Event", "Note", "Page",
    "Recipient", "Rule", "RuleAction", "RuleRequest", "Savings", "Silence", "SilenceRequest",
    "StateSnapshot", "StorageSavings", "Target", "Toggle", "Trend", "TrendPoint", "UtcTime",
]  # fmt: skip

T = TypeVar("T")
MAX_PAGE = 1000
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""A silence's weekdays, bit 0 (Monday) first, as ``silences.weekdays`` keeps them."""


def _utc(moment: datetime) -> datetime:
    # In UTC from here on: no later comparison or arithmetic meets a foreign offset, and a
    # moment that has none in UTC (year 1 at +05:00) is the caller's 422, not an overflow.
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("the moment is outside the years 1 to 9999 in UTC") from None


UtcTime = Annotated[AwareDatetime, AfterValidator(_utc)]
"""A moment with its offset (``2026-01-24T10:30:00Z``), kept in UTC."""


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
    """A command to one device and where it stands (``command_id``: the request it belongs
    to, with the other devices it went to)."""

    request_id: str
    command_id: str | None
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
    device_type: str | None = Field(
        default=None, max_length=100, description="the name of the devices' declared type"
    )
    every_device: bool = False


class CommandRequest(BaseModel):
    """A command: its payload kind (reboot, output_control, ...), values, and targets."""

    kind: str = Field(max_length=40)
    payload: dict[str, Any] = Field(default_factory=dict)
    target: Target
    max_retries: int | None = Field(default=None, ge=0, le=20)
    expires_in_s: float | None = Field(default=None, gt=0, le=7 * 86_400)


class CommandResult(BaseModel):
    """What was queued: one command per device, all under one ``command_id``."""

    command_id: str
    target_device_count: int
    commands: list[CommandLog]


class CommandSummary(BaseModel):
    """A request to many devices, as seed 003's command log: ``status`` is ``created`` while
    no device has been sent it, ``sent`` while any is on its way (or some wait for their
    device while others finished), then ``ack_success`` when every device completed it,
    ``ack_error`` when any failed or was cancelled; ``completed_at`` is set then."""

    command_id: str
    device_type: str | None = Field(description="the devices' declared type, when all share one")
    command_name: str
    command_type: str
    payload: dict[str, Any]
    status: Literal["created", "sent", "ack_success", "ack_error"]
    created_at: datetime
    executed_at: datetime | None = Field(description="when it was first sent")
    completed_at: datetime | None = Field(description="when the last device finished")
    target_device_count: int
    success_count: int = Field(description="devices that completed it")
    commands: Page[CommandLog] = Field(description="its command to each device, a page of them")


class StateSnapshot(BaseModel):
    """A device's whole state as it reported it (``device_id``: its hostname)."""

    id: int
    device_id: str | None
    device_type: str
    state_data: dict[str, Any]
    timestamp: datetime


class TrendPoint(BaseModel):
    """One window: its start, the time-weighted mean, and the live seconds behind it."""

    time: datetime
    value: float
    covered_seconds: float


class Trend(BaseModel):
    """The time-weighted mean of a device's metric per window (offline time counts for
    nothing; windows without live time are left out)."""

    hostname: str
    metric: str
    start: datetime
    stop: datetime
    every: timedelta
    source: str = Field(description="raw points, or the hourly downsample for long periods")
    points: list[TrendPoint]


class Savings(BaseModel):
    """Heartbeats received against points stored, overall or for one day, kind or device."""

    day: datetime | None = None
    kind: str | None = None
    hostname: str | None = None
    zone: int | None = None
    country: str | None = None
    received: int
    written: int
    saved: int
    reduction: float | None = Field(description="saved / received, 0-1; null for none received")
    received_bytes: int
    written_bytes: int
    saved_bytes: int


class StorageSavings(BaseModel):
    """What the CDC saved over the hours starting in [start, stop): the total, and a page of
    it by day, kind or device when asked (``by``)."""

    start: datetime
    stop: datetime
    bytes_per_point: float = Field(description="line-protocol bytes of a heartbeat point")
    total: Savings
    by: str | None
    items: list[Savings]
    limit: int
    offset: int


class CancelRequest(BaseModel):
    """Commands to cancel, by request id."""

    request_ids: list[str] = Field(min_length=1, max_length=1000)


class CancelResult(BaseModel):
    """Which of them were cancelled (the rest were unknown or finished)."""

    cancelled: list[str]


class Toggle(BaseModel):
    """Whether something was changed (False: it was in that state already)."""

    changed: bool


class Recipient(BaseModel):
    """Who a notification reaches: an email address, an E.164 phone number, a webhook URL."""

    type: Literal["email", "sms", "webhook"]
    address: str
    name: str = ""


class RuleAction(BaseModel):
    """A notification a rule's events send (``alerting.rules.Action``): its template, to the
    template's recipients or these; after ``after_minutes`` (an escalation, sent only while
    nobody acknowledged), grouped over ``group_seconds``, repeated every ``repeat_minutes``."""

    template: str = Field(max_length=255)
    recipients: list[Recipient] = Field(default_factory=list)
    after_minutes: float = Field(default=0.0, ge=0)
    on_resolve: bool = False
    group_seconds: float = Field(default=0.0, ge=0, le=3600)
    repeat_minutes: float = Field(default=0.0, ge=0)


class RuleRequest(BaseModel):
    """A rule as it is to be stored: the value it watches (``kind`` and ``metric``), where
    (``scope``), and when that value is a problem. A new one, or all of one replaced."""

    name: str = Field(min_length=1, max_length=255)
    description: str = Field(default="", max_length=2000)
    kind: str = Field(max_length=64)
    metric: str = Field(max_length=64)
    operator: RuleOperator
    warning: float | None = None
    critical: float | None = None
    clear: float | None = None
    for_seconds: int = Field(default=0, ge=0, le=7 * 86_400)
    clear_for_seconds: int = Field(default=0, ge=0, le=7 * 86_400)
    cooldown_minutes: float = Field(default=15.0, ge=0, le=525_600)
    scope: RuleScope = RuleScope.FLEET
    scope_value: str | None = Field(default=None, max_length=255)
    enabled: bool = True
    actions: list[RuleAction] = Field(default_factory=list, max_length=20)


class Rule(BaseModel):
    """A stored rule, its condition in words, and when it last fired."""

    name: str
    description: str
    kind: str
    metric: str
    operator: RuleOperator
    warning: float | None
    critical: float | None
    clear: float | None
    for_seconds: int
    clear_for_seconds: int
    cooldown_minutes: float
    scope: RuleScope
    scope_value: str | None
    enabled: bool
    builtin: bool
    actions: list[RuleAction]
    condition: str
    last_triggered_at: datetime | None
    updated_by: str | None
    updated_at: datetime


class SilenceRequest(BaseModel):
    """Hold notifications about a device, a zone or a rule from ``starts_at`` (now when
    left out) until ``ends_at``, or for ``minutes``; optionally only inside a daily UTC
    window on some weekdays (a mute timing). Events are still recorded."""

    scope_type: SilenceScope
    scope_value: str = Field(min_length=1, max_length=255, description="hostname, zone, rule")
    starts_at: UtcTime | None = None
    ends_at: UtcTime | None = None
    minutes: float | None = Field(default=None, gt=0, le=366 * 1440)
    on_end: SilenceEnd = Field(
        default=SilenceEnd.RELEASE, description="what happens to what it held: sent or dropped"
    )
    reason: str | None = Field(default=None, max_length=2000)
    weekdays: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = Field(
        default=None, min_length=1, max_length=7
    )
    window_start: time | None = None
    window_end: time | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.scope_type is SilenceScope.ZONE and not self.scope_value.isdigit():
            raise ValueError(f"a zone is a number, got {self.scope_value!r}")
        if (self.ends_at is None) == (self.minutes is None):
            raise ValueError("give ends_at or minutes (one of them)")
        if (self.window_start is None) != (self.window_end is None):
            raise ValueError("a daily window has a start and an end")
        if self.window_start is not None and self.window_start == self.window_end:
            raise ValueError("a daily window's start and end differ")
        if any(t is not None and t.utcoffset() for t in (self.window_start, self.window_end)):
            raise ValueError("a daily window is in UTC: give its times without an offset")
        return self

    def row(self, now: datetime) -> dict[str, Any]:
        """The ``silences`` columns, its times settled at ``now``; ValueError for a silence
        that would end before it starts or be over already."""
        starts = self.starts_at or now
        try:
            ends = self.ends_at or starts + timedelta(minutes=self.minutes or 0)
        except OverflowError:
            raise ValueError("that silence would end after the year 9999") from None
        if ends <= now:
            raise ValueError("that silence would be over already")
        if ends <= starts:
            raise ValueError("a silence ends after it starts")
        weekdays = sum(1 << WEEKDAYS.index(day) for day in set(self.weekdays or ()))
        return {
            "scope_type": self.scope_type.value, "scope_value": self.scope_value,
            "starts_at": starts, "ends_at": ends, "on_end": self.on_end.value,
            "reason": self.reason, "weekdays": weekdays or None,
            "window_start": self._naive(self.window_start),
            "window_end": self._naive(self.window_end),
        }  # fmt: skip

    @staticmethod
    def _naive(moment: time | None) -> time | None:
        # The column is a time of day in UTC without a zone (a "Z" given is dropped).
        return moment.replace(tzinfo=None) if moment is not None else None


class Silence(BaseModel):
    """A silence, and how many notifications it holds now."""

    id: int
    scope_type: str
    scope_value: str
    starts_at: datetime
    ends_at: datetime
    on_end: str
    reason: str | None
    weekdays: list[str] | None
    window_start: time | None
    window_end: time | None
    created_by: str | None
    created_at: datetime
    ended_by: str | None
    held: int
