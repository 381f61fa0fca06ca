"""Validated device messages: what decoding produces and handling consumes.

Each class is a frozen, slotted dataclass holding values already checked against the physical
ranges of the panel, with the transport facts (topic hostname, server receive time) attached.
Building one with an impossible value raises ``Rejected`` with a dead-letter reason.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ingest.kinds import DeclarationError
from ingest.kinds.panel import PANEL


class RejectReason(StrEnum):
    """Why a message was dead-lettered: a short, stable code for reports and alerts."""

    BAD_TOPIC = "bad_topic"
    TOO_LARGE = "too_large"
    UNDECODABLE = "undecodable"
    BAD_MAC = "bad_mac"
    OUT_OF_RANGE = "out_of_range"
    HOSTNAME_MISMATCH = "hostname_mismatch"
    UNREGISTERED = "unregistered"
    REPLAY = "replay"
    UNKNOWN_REQUEST = "unknown_request"
    STORE_REJECTED = "store_rejected"
    MALFORMED_JSON = "malformed_json"
    UNKNOWN_SERIAL = "unknown_serial"
    UNKNOWN_METRIC = "unknown_metric"
    WRONG_TYPE = "wrong_type"
    WRONG_DEVICE_TYPE = "wrong_device_type"


class Rejected(ValueError):
    """A message that cannot be accepted; it is kept as a dead letter with this reason."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


def _declared_range(name: str) -> tuple[float, float]:
    valid = PANEL.metric(name).valid
    if valid is None:
        raise DeclarationError(f"panel metric {name} declares no valid range")
    return valid


# Physical ranges of the panel's sensors and outputs, as its kind declares them.
TEMPERATURE_RANGE = _declared_range("temperature")
HUMIDITY_RANGE = _declared_range("humidity")
FAN_RANGE = _declared_range("fan_pwm_duty")
RSSI_RANGE = (-127, 0)
LATITUDE_RANGE = (-90.0, 90.0)
LONGITUDE_RANGE = (-180.0, 180.0)

_MAC = re.compile(r"^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}$")
_COUNTRY = re.compile(r"^[A-Z]{0,3}$")


@functools.lru_cache(maxsize=200_000)  # every message names its device's MAC again
def normalise_mac(raw: str) -> str:
    """``aa:bb:cc:dd:ee:ff`` from any of the usual spellings; Rejected if it is not a MAC."""
    text = raw.strip().lower()
    if not _MAC.match(text):
        raise Rejected(RejectReason.BAD_MAC, f"{raw[:40]!r} is not a MAC address")
    digits = re.sub(r"[^0-9a-f]", "", text)
    if digits in {"000000000000", "ffffffffffff"}:
        raise Rejected(RejectReason.BAD_MAC, f"{raw!r} is not a device address")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def check_range(name: str, value: float, bounds: tuple[float, float]) -> None:
    """Rejected unless ``value`` is finite and within ``bounds`` (inclusive)."""
    low, high = bounds
    if not (math.isfinite(value) and low <= value <= high):
        raise Rejected(RejectReason.OUT_OF_RANGE, f"{name}={value!r} outside [{low}, {high}]")


INT32_MAX = 2**31 - 1


def check_length(name: str, value: str, limit: int) -> None:
    """Rejected if a text field exceeds its column width or holds a NUL (PostgreSQL refuses it)."""
    if len(value) > limit:
        raise Rejected(RejectReason.OUT_OF_RANGE, f"{name} longer than {limit} characters")
    if "\x00" in value:
        raise Rejected(RejectReason.OUT_OF_RANGE, f"{name} contains a NUL character")


def check_int32(owner: object, names: tuple[str, ...]) -> None:
    """Rejected if an unsigned wire integer does not fit its INTEGER column."""
    for name in names:
        value = getattr(owner, name)
        if value is not None and value > INT32_MAX:
            raise Rejected(RejectReason.OUT_OF_RANGE, f"{name}={value} exceeds {INT32_MAX}")


def check_ip(value: str) -> str | None:
    """The address, or None when the device has none; Rejected if it is malformed."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise Rejected(RejectReason.OUT_OF_RANGE, f"ip_address {value[:40]!r} invalid") from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class Received:
    """Transport facts shared by every message kind."""

    hostname: str
    received_at: datetime  # server clock
    device_ts: datetime | None  # device clock, kept only when plausible
    # The sender's id for the message, where its transport has one (WebSocket frames): a
    # message resent under the same id is recognised and taken once.
    message_id: str | None = None

    @property
    def event_time(self) -> datetime:
        """When it happened: the device clock when plausible, else the server's receipt."""
        return self.device_ts or self.received_at

    def __post_init__(self) -> None:
        if self.received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware")
        if self.message_id is not None:
            check_length("message id", self.message_id, 64)


_STATUS_INTS = (
    "device_db_id",
    "uptime",
    "boot_count",
    "state_duration",
    "free_heap",
    "min_heap",
    "panic1_count",
    "panic2_count",
    "tamper_count",
    "wifi_disconnects",
    "mqtt_disconnects",
    "error_count",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusReport(Received):
    """A StatusMessage: the full picture of one device."""

    mac: str
    device_db_id: int
    firmware: str
    partition: int
    ota_validated: bool
    uptime: int
    boot_count: int
    device_state: str
    state_duration: int
    free_heap: int
    min_heap: int
    network_type: str
    ip_address: str | None
    rssi: int
    connected: bool
    has_ip: bool
    mqtt_connected: bool
    ntp_synced: bool
    last_ntp_sync: datetime | None
    panic1: bool
    panic2: bool
    box_sw: bool
    siren: bool
    turret: bool
    panic1_count: int
    panic2_count: int
    tamper_count: int
    wifi_disconnects: int
    mqtt_disconnects: int
    error_count: int
    temperature: float
    humidity: float
    error_flags: int
    country: str | None
    zone: int
    latitude: float | None
    longitude: float | None

    def __post_init__(self) -> None:
        Received.__post_init__(self)
        check_range("temperature", self.temperature, TEMPERATURE_RANGE)
        check_range("humidity", self.humidity, HUMIDITY_RANGE)
        check_range("rssi", self.rssi, RSSI_RANGE)
        check_length("firmware", self.firmware, 16)
        check_int32(self, _STATUS_INTS)
        if self.partition > 2:
            raise Rejected(RejectReason.OUT_OF_RANGE, f"partition={self.partition} not 0-2")
        if self.country is not None and not _COUNTRY.fullmatch(self.country):
            raise Rejected(RejectReason.OUT_OF_RANGE, f"country {self.country[:8]!r} not ISO")
        if self.latitude is not None:
            check_range("latitude", self.latitude, LATITUDE_RANGE)
        if self.longitude is not None:
            check_range("longitude", self.longitude, LONGITUDE_RANGE)


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatReport(Received):
    """A Heartbeat: the fast-changing values."""

    mac: str
    device_db_id: int
    firmware: str
    uptime: int
    panic1: bool
    panic2: bool
    box_sw: bool
    siren: bool
    turret: bool
    temperature: float
    humidity: float
    fan_pwm_duty: int
    network_type: str

    def __post_init__(self) -> None:
        Received.__post_init__(self)
        check_range("temperature", self.temperature, TEMPERATURE_RANGE)
        check_range("humidity", self.humidity, HUMIDITY_RANGE)
        check_range("fan_pwm_duty", self.fan_pwm_duty, FAN_RANGE)
        check_length("firmware", self.firmware, 16)
        check_int32(self, ("uptime", "device_db_id"))


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmReport(Received):
    """An AlarmEvent: an input alarm or an output pattern changing state."""

    mac: str
    device_db_id: int
    sequence: int
    alarm_type: str
    event_state: str
    priority: str
    physical_state: bool
    output_type: int | None
    pattern_type: int | None
    duration_seconds: int
    elapsed_seconds: int
    digest: bytes  # hash of the payload: tells an exact redelivery from a replay

    def __post_init__(self) -> None:
        Received.__post_init__(self)
        check_int32(
            self,
            ("device_db_id", "output_type", "pattern_type", "duration_seconds", "elapsed_seconds"),
        )

    @property
    def is_output(self) -> bool:
        """True for siren/turret pattern events."""
        return self.alarm_type == "OUTPUT_EVENT"


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandReply(Received):
    """A CommandResponse from a device."""

    request_id: str
    sequence: int
    stage: str
    success: bool
    response_code: int
    error_message: str
    data: dict[str, str]

    def __post_init__(self) -> None:
        Received.__post_init__(self)
        check_length("error_message", self.error_message, 2000)
        for key, value in self.data.items():
            check_length("data key", key, 200)
            check_length("data value", value, 2000)


@dataclass(frozen=True, slots=True, kw_only=True)
class LastWill(Received):
    """Notice that a device's connection was lost: the broker's last will (MQTT), or the
    server's own when a socket closed (``via`` what) or went silent (``timed_out``)."""

    via: str = "last_will"
    timed_out: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StateSnapshot(Received):
    """A device's whole state as it reported it (seed 003's ``status``), kept as sent; the
    numbers and flags its device type declares among it are readings (``metrics``)."""

    device_type: str
    state: dict[str, object]
    metrics: dict[str, bool | int | float]

    def __post_init__(self) -> None:
        Received.__post_init__(self)
        check_length("device_type", self.device_type, 100)


@dataclass(frozen=True, slots=True, kw_only=True)
class TelemetryReport(Received):
    """A JSON telemetry reading of a device of a declared type (``hostname`` is its serial).

    The metrics are only known to be numbers or flags here; the handler checks them against
    the device's type (``ingest.kinds.telemetry.checked_values``).
    """

    version: str
    metrics: dict[str, bool | int | float]
    device_type: str | None  # the type an unknown serial announces (auto-registration)

    def __post_init__(self) -> None:
        Received.__post_init__(self)
        check_length("version", self.version, 20)
        if self.device_type is not None:
            check_length("device_type", self.device_type, 100)


ROBOT_STATUSES = frozenset({"online", "error", "maintenance"})  # "offline" is ingest's to say
JOB_STATUSES = frozenset({"active", "completed", "failed"})


@dataclass(frozen=True, slots=True)
class RobotPart:
    """One part's values in a robot's state: ``section`` (battery, servos, ...), the
    ``instance`` of a part the robot has several of (servo_1), the sensor's ``unit``."""

    section: str
    instance: str | None
    values: dict[str, bool | int | float | str | None]
    unit: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RobotReport(Received):
    """A robot's state (``hostname`` is its robot_id), already checked against the parts'
    declarations; every section is optional."""

    parts: tuple[RobotPart, ...]
    status: str | None
    location: dict[str, float] | None
    ip_address: str | None

    def __post_init__(self) -> None:
        Received.__post_init__(self)
        if self.status is not None and self.status not in ROBOT_STATUSES:
            raise Rejected(RejectReason.OUT_OF_RANGE, f"status {self.status[:20]!r} unknown")


@dataclass(frozen=True, slots=True, kw_only=True)
class JobReport(Received):
    """A robot's report on one of its jobs (``job_key`` is the robot's name for it)."""

    job_key: str
    items_total: int | None
    items_done: int
    last_item: dict[str, object] | None
    status: str
    reason: str | None

    def __post_init__(self) -> None:
        Received.__post_init__(self)
        check_length("job_id", self.job_key, 64)
        if not self.job_key:
            raise Rejected(RejectReason.MALFORMED_JSON, "job_id must not be empty")
        if self.status not in JOB_STATUSES:
            raise Rejected(RejectReason.OUT_OF_RANGE, f"job status {self.status[:20]!r} unknown")
        for name in ("items_total", "items_done"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= INT32_MAX:
                raise Rejected(RejectReason.OUT_OF_RANGE, f"{name}={value} outside 0..{INT32_MAX}")
        if self.reason is not None:
            check_length("reason", self.reason, 500)


DeviceMessage = (
    StatusReport
    | HeartbeatReport
    | AlarmReport
    | CommandReply
    | LastWill
    | TelemetryReport
    | StateSnapshot
    | RobotReport
    | JobReport
)
