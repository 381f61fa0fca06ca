"""Commands to devices: what each kind needs, how it travels, and how responses move it on.

The life of a command (``command_log.status``)::

    PENDING --publish--> SENT --ACKNOWLEDGED--> ACKNOWLEDGED --COMPLETED ok--> COMPLETED
       |                  |  \\                      |       \\--COMPLETED error--> FAILED
       |                  |   no ack in time          no completion in time --> FAILED
       |                  v                          (not retried: the device has it)
       |               TIMEOUT --backoff elapsed--> SENT again (retry_count + 1)
       |                  \\--retries exhausted--> FAILED
       \\--expires_at passed while the device was offline--> FAILED
    PENDING/SENT/TIMEOUT/ACKNOWLEDGED --cancel--> CANCELLED (no further sends)

A response is only ever applied as the device sent it: nothing is reported acknowledged or
completed that the device did not say. A late response (after TIMEOUT, FAILED or CANCELLED)
is recorded with a note instead of being dropped.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from google.protobuf.json_format import ParseDict

from ingest.contract import pb


class CommandError(ValueError):
    """A command that cannot be issued as asked."""


class CommandRefused(PermissionError):
    """The caller's authorisation level is below what the command type needs."""


class Status(StrEnum):
    """command_log.status values."""

    PENDING = "PENDING"
    SENT = "SENT"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    CANCELLED = "CANCELLED"


OPEN_STATUSES: Final = frozenset({Status.PENDING, Status.SENT, Status.TIMEOUT, Status.ACKNOWLEDGED})
CANCELLABLE: Final = OPEN_STATUSES

# Which command type each payload is, and the authorisation level it needs: reading
# diagnostics is harmless, driving outputs or changing config is an operator's job,
# rebooting, re-identifying or re-flashing a panel is an administrator's.
PAYLOAD_TYPES: Final[Mapping[str, str]] = {
    "set_device_id": "SYSTEM",
    "reboot": "SYSTEM",
    "output_control": "OUTPUT",
    "config_update": "CONFIG",
    "ota_update": "OTA",
    "diagnostic": "DIAGNOSTIC",
}
REQUIRED_LEVEL: Final[Mapping[str, int]] = {
    "DIAGNOSTIC": 0,
    "OUTPUT": 1,
    "CONFIG": 1,
    "SYSTEM": 2,
    "OTA": 2,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandTiming:
    """Deadlines and retry policy."""

    ack_timeout: timedelta = timedelta(seconds=30)
    completion_timeout: timedelta = timedelta(minutes=2)
    backoff_base: timedelta = timedelta(seconds=5)
    backoff_max: timedelta = timedelta(minutes=5)
    max_retries: int = 3
    offline_expiry: timedelta = timedelta(hours=1)
    sync_backoff_base: timedelta = timedelta(minutes=1)
    sync_alert_after: int = 3

    def __post_init__(self) -> None:
        for name in ("ack_timeout", "completion_timeout", "backoff_base", "backoff_max"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be positive")
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")

    def backoff(self, retry: int) -> timedelta:
        """Wait before retry number ``retry`` (1, 2, …): doubling, capped."""
        wait: timedelta = min(self.backoff_base * (2 ** max(retry - 1, 0)), self.backoff_max)
        return wait

    def sync_backoff(self, attempts: int) -> timedelta:
        """Wait after ``attempts`` SET_DEVICE_ID commands before the next one."""
        wait: timedelta = min(self.sync_backoff_base * (2 ** max(attempts, 0)), timedelta(hours=6))
        return wait


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command's payload: a oneof field of CommandEnvelope and its values."""

    kind: str
    values: Mapping[str, Any]

    def __post_init__(self) -> None:
        if self.kind not in PAYLOAD_TYPES:
            raise CommandError(f"unknown command {self.kind!r}; one of {sorted(PAYLOAD_TYPES)}")
        try:
            self.envelope(str(uuid.uuid4()), 1, 0, 0)
        except Exception as exc:  # ParseDict raises several kinds
            raise CommandError(f"invalid {self.kind} payload {self.values!r}: {exc}") from exc

    @property
    def command_type(self) -> str:
        """command_type_enum value."""
        return PAYLOAD_TYPES[self.kind]

    @property
    def required_level(self) -> int:
        """Lowest authorisation level allowed to send it."""
        return REQUIRED_LEVEL[self.command_type]

    def as_json(self) -> dict[str, Any]:
        """The form stored in command_log.command_data."""
        return {self.kind: dict(self.values)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CommandSpec:
        """Inverse of ``as_json``; CommandError for anything else (a row edited by hand)."""
        if not isinstance(data, Mapping):
            raise CommandError(f"command_data must be a JSON object, got {type(data).__name__}")
        if len(data) != 1:
            raise CommandError(f"command_data must hold exactly one payload, got {list(data)}")
        ((kind, values),) = data.items()
        return cls(kind, values)

    def json_envelope(
        self, request_id: str, sequence: int, timestamp_ms: int, auth_level: int
    ) -> bytes:
        """The command as JSON, for devices that speak JSON (robots): the envelope's fields
        and ``command``, the payload as stored (``{"reboot": {"delayMs": 100}}``)."""
        body = {
            "request_id": request_id,
            "sequence": sequence,
            "timestamp": timestamp_ms,
            "type": self.command_type,
            "auth_level": auth_level,
            "command": self.as_json(),
        }
        return json.dumps(body, separators=(",", ":")).encode()

    def envelope(
        self, request_id: str, sequence: int, timestamp_ms: int, auth_level: int
    ) -> pb.CommandEnvelope:
        """The protobuf message sent on the device's command topic."""
        message = pb.CommandEnvelope(
            request_id=request_id,
            sequence=sequence,
            timestamp=timestamp_ms,
            type=self.command_type,
            auth_level=auth_level,
        )
        ParseDict({self.kind: dict(self.values)}, message)
        return message


def set_device_id(device_id: int) -> CommandSpec:
    """The command telling a device the id fleetwatch knows it by."""
    return CommandSpec("set_device_id", {"deviceDbId": device_id})


def authorise(spec: CommandSpec, caller_level: int) -> None:
    """Raise CommandRefused unless ``caller_level`` may send ``spec``."""
    if caller_level < spec.required_level:
        raise CommandRefused(
            f"{spec.kind} is a {spec.command_type} command and needs authorisation level "
            f"{spec.required_level}; the caller has {caller_level}"
        )


@dataclass(frozen=True, slots=True)
class Reply:
    """The parts of a CommandResponse that move a command on."""

    stage: str  # ACKNOWLEDGED or COMPLETED
    success: bool
    response_code: int
    error_message: str
    data: Mapping[str, str]
    received_at: datetime


def apply_reply(
    status: str, acknowledged: bool, responded: bool, reply: Reply, timing: CommandTiming
) -> dict[str, Any] | None:
    """The command_log columns a reply changes, or None when it changes nothing (duplicate).

    ``status``, ``acknowledged`` (has an acknowledged_at) and ``responded`` (has the device's
    final response) describe the command now.
    """
    late = status in (Status.TIMEOUT, Status.FAILED, Status.CANCELLED)
    if reply.stage == "ACKNOWLEDGED":
        if acknowledged or status in (Status.COMPLETED,):
            return None
        changes: dict[str, Any] = {"acknowledged_at": reply.received_at}
        if status in (Status.PENDING, Status.SENT, Status.TIMEOUT):
            changes["status"] = Status.ACKNOWLEDGED
            changes["next_retry_at"] = reply.received_at + timing.completion_timeout
        if late:
            changes["notes"] = f"acknowledged late, after {status}"
        return changes
    # COMPLETED
    if responded:
        return None
    changes = {
        "response_code": reply.response_code,
        "response_data": dict(reply.data),
        "next_retry_at": None,
    }
    if not acknowledged:
        changes["acknowledged_at"] = reply.received_at  # completing implies receipt
    if reply.success:
        changes["completed_at"] = reply.received_at
    else:
        changes["failed_at"] = reply.received_at
        changes["error_message"] = reply.error_message or f"device error {reply.response_code}"
    if status == Status.CANCELLED:
        changes["notes"] = "completed by the device after it was cancelled"
    else:
        changes["status"] = Status.COMPLETED if reply.success else Status.FAILED
        if late:
            changes["notes"] = f"response arrived late, after {status}"
    return changes
