"""Bytes and the address they arrived on in, validated message out: the only place that
reads protobuf.

Decoding is separate from handling so that another device kind (JSON telemetry) or another
transport (WebSocket) only adds a decoder; the handlers see the same validated messages. A
decoder reads addresses with its transport's ``Addressing`` (MQTT: the topic scheme), which
names the device and the message kind.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from google.protobuf.message import DecodeError, Message

from ingest.contract import TopicError, TopicKind, pb, telemetry_pb2
from ingest.kinds import validate
from ingest.kinds.robot import INSTANCE, MAX_INSTANCES, PARTS, Part
from ingest.messages import (
    AlarmReport,
    CommandReply,
    DeviceMessage,
    HeartbeatReport,
    JobReport,
    LastWill,
    Rejected,
    RejectReason,
    RobotPart,
    RobotReport,
    StatusReport,
    TelemetryReport,
    check_ip,
    normalise_mac,
)

if TYPE_CHECKING:  # the transports import their decoders from here
    from ingest.transports.base import Addressing, Origin

NETWORK_TYPES = {0: "wifi", 1: "ethernet", 2: "none"}
ETH_INTERFACES = {0: "wifi", 1: "ethernet"}

M = TypeVar("M", bound=Message)

# Parsed topics kept (about 200 bytes each): a fleet's few topics per device, parsed once.
ORIGIN_CACHE_SIZE = 300_000


@dataclass(frozen=True, slots=True, kw_only=True)
class DecodeLimits:
    """Bounds on what the decoder accepts."""

    max_payload_bytes: int = 4096
    # A device timestamp is trusted as the event time only inside this window around the
    # server's receive time: a clock ahead of the server is wrong (no NTP yet), while one
    # behind it may be a backlog the broker held while ingest was down.
    max_clock_ahead: timedelta = timedelta(minutes=5)
    max_backlog_age: timedelta = timedelta(days=7)

    def __post_init__(self) -> None:
        if self.max_payload_bytes <= 0:
            raise ValueError("max_payload_bytes must be positive")
        if self.max_clock_ahead <= timedelta(0) or self.max_backlog_age <= timedelta(0):
            raise ValueError("clock windows must be positive")


class Decoder:
    """Turns (address, payload) of one transport's addressing into validated messages."""

    def __init__(self, addressing: Addressing, limits: DecodeLimits | None = None) -> None:
        self._addressing = addressing
        self._limits = limits or DecodeLimits()
        # A fleet sends on a few topics per device, over and over: each is parsed once.
        self._origins: dict[str, Origin] = {}
        self._by_kind: dict[TopicKind, Callable[[bytes, Context], DeviceMessage]] = {
            TopicKind.STATUS: _status,
            TopicKind.HEARTBEAT: _heartbeat,
            TopicKind.ALARM: _alarm,
            TopicKind.RESPONSE: _response,
            TopicKind.LWT: _last_will,
            TopicKind.TELEMETRY: _telemetry,
            TopicKind.ROBOT: _robot,
            TopicKind.JOB: _job,
        }

    def decode(self, address: str, payload: bytes, received_at: datetime) -> DeviceMessage | None:
        """The validated message, or None for fleetwatch's own commands seen on the wildcard.

        Raises Rejected with the reason the message must be dead-lettered.
        """
        parsed = self._origins.get(address)
        if parsed is None:
            try:
                parsed = self._addressing.parse(address)
            except TopicError as exc:
                raise Rejected(RejectReason.BAD_TOPIC, str(exc)) from exc
            if len(self._origins) >= ORIGIN_CACHE_SIZE:
                self._origins.clear()  # a bound on memory; refilled from the next messages
            self._origins[address] = parsed
        handler = self._by_kind.get(parsed.kind)
        if handler is None:
            return None  # server -> device traffic: not input
        if len(payload) > self._limits.max_payload_bytes:
            raise Rejected(
                RejectReason.TOO_LARGE,
                f"{len(payload)} bytes exceeds {self._limits.max_payload_bytes}",
            )
        context = Context(parsed.hostname, received_at, self._limits)
        return handler(payload, context)


@dataclass(frozen=True, slots=True)
class Context:
    hostname: str
    received_at: datetime
    limits: DecodeLimits

    def device_time(self, epoch_ms: int) -> datetime | None:
        """The device timestamp if it is set and plausible, else None."""
        if epoch_ms <= 0:
            return None
        try:
            when = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
        ahead = when - self.received_at
        plausible = -self.limits.max_backlog_age <= ahead <= self.limits.max_clock_ahead
        return when if plausible else None

    def check_hostname(self, claimed: str) -> None:
        if claimed and claimed != self.hostname:
            raise Rejected(
                RejectReason.HOSTNAME_MISMATCH,
                f"payload hostname {claimed[:40]!r} published under {self.hostname!r}",
            )


def _parse(kind: type[M], payload: bytes) -> M:
    try:
        return kind.FromString(payload)
    except DecodeError as exc:
        raise Rejected(RejectReason.UNDECODABLE, f"not a {kind.__name__}: {exc}") from exc


def _enum_name(enum: object, value: int, field: str) -> str:
    try:
        return str(enum.Name(value))  # type: ignore[attr-defined]
    except ValueError as exc:
        raise Rejected(RejectReason.OUT_OF_RANGE, f"{field}={value} is not a known value") from exc


def _status(payload: bytes, ctx: Context) -> StatusReport:
    msg = _parse(pb.StatusMessage, payload)
    ctx.check_hostname(msg.hostname)
    if msg.network not in NETWORK_TYPES:
        raise Rejected(RejectReason.OUT_OF_RANGE, f"network={msg.network} is not a known value")
    has_location = msg.latitude != 0.0 or msg.longitude != 0.0
    return StatusReport(
        hostname=ctx.hostname,
        received_at=ctx.received_at,
        device_ts=ctx.device_time(msg.timestamp),
        mac=normalise_mac(msg.mac_address),
        device_db_id=msg.device_db_id,
        firmware=msg.firmware,
        partition=msg.partition,
        ota_validated=msg.ota_validated,
        uptime=msg.uptime,
        boot_count=msg.boot_count,
        device_state=_enum_name(pb.StatusMessage.DeviceState, msg.state, "state"),
        state_duration=msg.state_duration,
        free_heap=msg.free_heap,
        min_heap=msg.min_heap,
        network_type=NETWORK_TYPES[msg.network],
        ip_address=check_ip(msg.ip_address),
        rssi=msg.rssi,
        connected=msg.connected,
        has_ip=msg.has_ip,
        mqtt_connected=msg.mqtt_connected,
        ntp_synced=msg.ntp_synced,
        last_ntp_sync=ctx.device_time(msg.last_ntp_sync),
        panic1=msg.panic1,
        panic2=msg.panic2,
        box_sw=msg.box_sw,
        siren=msg.siren,
        turret=msg.turret,
        panic1_count=msg.panic1_count,
        panic2_count=msg.panic2_count,
        tamper_count=msg.tamper_count,
        wifi_disconnects=msg.wifi_disconnects,
        mqtt_disconnects=msg.mqtt_disconnects,
        error_count=msg.error_count,
        temperature=msg.temperature,
        humidity=msg.humidity,
        error_flags=msg.error_flags,
        country=msg.country.upper() or None,
        zone=msg.zone,
        latitude=msg.latitude if has_location else None,
        longitude=msg.longitude if has_location else None,
    )


def _heartbeat(payload: bytes, ctx: Context) -> HeartbeatReport:
    msg = _parse(pb.Heartbeat, payload)
    if msg.eth_interface not in ETH_INTERFACES:
        raise Rejected(RejectReason.OUT_OF_RANGE, f"eth_interface={msg.eth_interface} not 0/1")
    return HeartbeatReport(
        hostname=ctx.hostname,
        received_at=ctx.received_at,
        device_ts=ctx.device_time(msg.timestamp),
        mac=normalise_mac(msg.mac_address),
        device_db_id=msg.device_db_id,
        firmware=msg.firmware,
        uptime=msg.uptime,
        panic1=msg.panic1,
        panic2=msg.panic2,
        box_sw=msg.box_sw,
        siren=msg.siren,
        turret=msg.turret,
        temperature=msg.temperature,
        humidity=msg.humidity,
        fan_pwm_duty=msg.fan_pwm_duty,
        network_type=ETH_INTERFACES[msg.eth_interface],
    )


def _alarm(payload: bytes, ctx: Context) -> AlarmReport:
    msg = _parse(pb.AlarmEvent, payload)
    alarm_type = _enum_name(pb.AlarmEvent.AlarmType, msg.type, "type")
    if alarm_type == "UNKNOWN":
        # The protobuf default: a device that forgot to say what happened. (UNKNOWN rows in
        # alarm_events are fleetwatch's own alerts.)
        raise Rejected(RejectReason.OUT_OF_RANGE, "alarm type UNKNOWN (0) is not an event")
    is_output = alarm_type == "OUTPUT_EVENT"
    if is_output and msg.output_type not in (1, 2):
        raise Rejected(RejectReason.OUT_OF_RANGE, f"output_type={msg.output_type} not 1/2")
    return AlarmReport(
        hostname=ctx.hostname,
        received_at=ctx.received_at,
        device_ts=ctx.device_time(msg.timestamp),
        mac=normalise_mac(msg.mac_address),
        device_db_id=msg.device_db_id,
        sequence=msg.sequence,
        alarm_type=alarm_type,
        event_state=_enum_name(pb.AlarmEvent.EventState, msg.state, "state"),
        priority=_enum_name(pb.AlarmEvent.Priority, msg.priority, "priority"),
        physical_state=msg.physical_state,
        output_type=msg.output_type if is_output else None,
        pattern_type=msg.pattern_type if is_output else None,
        duration_seconds=msg.duration_seconds,
        elapsed_seconds=msg.elapsed_seconds,
        digest=hashlib.blake2b(payload, digest_size=16).digest(),
    )


def _response(payload: bytes, ctx: Context) -> CommandReply:
    if payload[:1] == b"{":  # devices that speak JSON (robots) answer in JSON
        return _json_response(payload, ctx)
    msg = _parse(pb.CommandResponse, payload)
    try:
        request_id = str(uuid.UUID(msg.request_id))
    except ValueError as exc:
        raise Rejected(
            RejectReason.OUT_OF_RANGE, f"request_id {msg.request_id[:40]!r} is not a UUID"
        ) from exc
    if msg.stage == pb.CommandResponse.STAGE_UNSPECIFIED:
        raise Rejected(RejectReason.OUT_OF_RANGE, "stage is neither ACKNOWLEDGED nor COMPLETED")
    return CommandReply(
        hostname=ctx.hostname,
        received_at=ctx.received_at,
        device_ts=ctx.device_time(msg.timestamp),
        request_id=request_id,
        sequence=msg.sequence,
        stage=_enum_name(pb.CommandResponse.Stage, msg.stage, "stage"),
        success=msg.success,
        response_code=msg.response_code,
        error_message=msg.error_message,
        data=dict(msg.data),
    )


_RESPONSE_KEYS = frozenset(
    {
        "request_id",
        "sequence",
        "timestamp",
        "stage",
        "success",
        "response_code",
        "error_message",
        "data",
    }
)


def _json_response(payload: bytes, ctx: Context) -> CommandReply:
    """A CommandResponse in JSON: the same fields, ``stage`` by name."""
    body = json_object(payload, _RESPONSE_KEYS)
    request_id, stage = body.get("request_id"), body.get("stage")
    if not isinstance(request_id, str) or stage not in ("ACKNOWLEDGED", "COMPLETED"):
        raise Rejected(
            RejectReason.MALFORMED_JSON, "request_id and stage (ACKNOWLEDGED or COMPLETED) needed"
        )
    try:
        request_id = str(uuid.UUID(request_id))
    except ValueError as exc:
        raise Rejected(
            RejectReason.OUT_OF_RANGE, f"request_id {request_id[:40]!r} is not a UUID"
        ) from exc
    sequence, code = body.get("sequence", 0), body.get("response_code", 0)
    success, error = body.get("success", True), body.get("error_message", "")
    data = body.get("data", {})
    if (
        isinstance(sequence, bool)
        or not isinstance(sequence, int)
        or isinstance(code, bool)
        or not isinstance(code, int)
        or not isinstance(success, bool)
        or not isinstance(error, str)
        or not isinstance(data, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items())
    ):
        raise Rejected(RejectReason.WRONG_TYPE, "a response field has the wrong type")
    if not 0 <= sequence < 2**32 or not -(2**31) <= code < 2**31:
        raise Rejected(RejectReason.OUT_OF_RANGE, "sequence or response_code out of range")
    return CommandReply(
        hostname=ctx.hostname,
        received_at=ctx.received_at,
        device_ts=device_stamp(body, ctx),
        request_id=request_id,
        sequence=sequence,
        stage=str(stage),
        success=success,
        response_code=code,
        error_message=error,
        data=dict(data),
    )


def _last_will(_payload: bytes, ctx: Context) -> LastWill:
    return LastWill(hostname=ctx.hostname, received_at=ctx.received_at, device_ts=None)


def _telemetry(payload: bytes, ctx: Context) -> TelemetryReport:
    """Seed 002's JSON reading, or its protobuf form (``telemetry.proto``); the metrics'
    names and ranges are checked by the handler, which knows the device's type."""
    if payload[:1] != b"{":
        return _telemetry_protobuf(payload, ctx)
    body = json_object(payload, _TELEMETRY_KEYS)
    version, serial = body.get("version"), body.get("serial_number")
    if not isinstance(version, str) or not isinstance(serial, str):
        raise Rejected(RejectReason.MALFORMED_JSON, "version and serial_number must be strings")
    if serial != ctx.hostname:
        raise Rejected(
            RejectReason.HOSTNAME_MISMATCH,
            f"payload serial {serial[:40]!r} published under {ctx.hostname!r}",
        )
    metrics = body.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise Rejected(RejectReason.MALFORMED_JSON, "metrics must be a non-empty object")
    for name, value in metrics.items():
        if not isinstance(value, bool | int | float):
            raise Rejected(
                RejectReason.WRONG_TYPE, f"metric {name[:40]!r} is not a number or a flag"
            )
    stamp, device_type = body.get("timestamp", 0), body.get("device_type")
    if isinstance(stamp, bool) or not isinstance(stamp, int):
        raise Rejected(RejectReason.MALFORMED_JSON, "timestamp must be epoch milliseconds")
    if device_type is not None and not isinstance(device_type, str):
        raise Rejected(RejectReason.MALFORMED_JSON, "device_type must be a string")
    return TelemetryReport(
        hostname=ctx.hostname,
        received_at=ctx.received_at,
        device_ts=ctx.device_time(stamp),
        version=version,
        metrics=metrics,
        device_type=device_type,
    )


def _telemetry_protobuf(payload: bytes, ctx: Context) -> TelemetryReport:
    msg = _parse(telemetry_pb2.TelemetryReading, payload)
    if msg.serial_number != ctx.hostname:
        raise Rejected(
            RejectReason.HOSTNAME_MISMATCH,
            f"payload serial {msg.serial_number[:40]!r} published under {ctx.hostname!r}",
        )
    if not msg.metrics:
        raise Rejected(RejectReason.UNDECODABLE, "a TelemetryReading without metrics")
    metrics: dict[str, bool | int | float] = {}
    for name, value in msg.metrics.items():
        chosen = value.WhichOneof("value")
        if chosen is None:
            raise Rejected(RejectReason.WRONG_TYPE, f"metric {name[:40]!r} has no value")
        metrics[name] = getattr(value, chosen)
    return TelemetryReport(
        hostname=ctx.hostname,
        received_at=ctx.received_at,
        device_ts=ctx.device_time(msg.timestamp),
        version=msg.version,
        metrics=metrics,
        device_type=msg.device_type or None,
    )


_TELEMETRY_KEYS = frozenset({"version", "serial_number", "metrics", "timestamp", "device_type"})
_ROBOT_KEYS = frozenset({"robot_id", "timestamp", "status", "location", "ip_address", *PARTS})
_JOB_KEYS = frozenset(
    {
        "robot_id",
        "job_id",
        "timestamp",
        "items_total",
        "items_done",
        "last_item",
        "status",
        "reason",
    }
)
_LOCATION_KEYS = frozenset({"x", "y", "z", "heading"})


def json_object(payload: bytes, keys: frozenset[str]) -> dict[str, object]:
    """The payload as a JSON object with only ``keys``; Rejected(malformed_json) otherwise."""
    return only_keys(json_document(payload), keys)


def json_document(payload: bytes) -> dict[str, object]:
    """The payload as a JSON object; Rejected(malformed_json) otherwise."""
    try:
        body = json.loads(payload.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Rejected(RejectReason.MALFORMED_JSON, f"not a JSON document: {exc}"[:200]) from exc
    if not isinstance(body, dict):
        raise Rejected(
            RejectReason.MALFORMED_JSON, f"expected an object, got {type(body).__name__}"
        )
    return body


def only_keys(body: dict[str, object], keys: frozenset[str]) -> dict[str, object]:
    """``body``, if it holds only ``keys``; Rejected(malformed_json) otherwise."""
    unknown = sorted(set(body) - keys)
    if unknown:
        raise Rejected(RejectReason.MALFORMED_JSON, f"unknown keys {unknown[:5]}"[:200])
    return body


def _own_id(body: dict[str, object], key: str, ctx: Context) -> None:
    """The payload names the device of its topic (Rejected otherwise)."""
    claimed = body.get(key)
    if not isinstance(claimed, str):
        raise Rejected(RejectReason.MALFORMED_JSON, f"{key} must be a string")
    if claimed != ctx.hostname:
        raise Rejected(
            RejectReason.HOSTNAME_MISMATCH,
            f"payload {key} {claimed[:40]!r} published under {ctx.hostname!r}",
        )


def device_stamp(body: dict[str, object], ctx: Context) -> datetime | None:
    stamp = body.get("timestamp", 0)
    if isinstance(stamp, bool) or not isinstance(stamp, int):
        raise Rejected(RejectReason.MALFORMED_JSON, "timestamp must be epoch milliseconds")
    return ctx.device_time(stamp)


def _robot(payload: bytes, ctx: Context) -> RobotReport:
    """A robot's state: each section checked against its part's declaration."""
    body = json_object(payload, _ROBOT_KEYS)
    _own_id(body, "robot_id", ctx)
    parts: list[RobotPart] = []
    for section, part in PARTS.items():
        if section in body:
            parts.extend(_robot_parts(part, body[section]))
    if not parts and not {"status", "location", "ip_address"} & set(body):
        raise Rejected(RejectReason.MALFORMED_JSON, "a robot state needs at least one section")
    status, address = body.get("status"), body.get("ip_address")
    if status is not None and not isinstance(status, str):
        raise Rejected(RejectReason.MALFORMED_JSON, "status must be a string")
    if address is not None and not isinstance(address, str):
        raise Rejected(RejectReason.MALFORMED_JSON, "ip_address must be a string")
    return RobotReport(
        hostname=ctx.hostname,
        received_at=ctx.received_at,
        device_ts=device_stamp(body, ctx),
        parts=tuple(parts),
        status=status,
        location=_location(body.get("location")),
        ip_address=check_ip(address) if address else None,
    )


def _robot_parts(part: Part, section: object) -> list[RobotPart]:
    where = f"robot {part.section}"
    if part.instance_tag is None:
        if not isinstance(section, dict):
            raise Rejected(RejectReason.MALFORMED_JSON, f"{part.section} must be an object")
        values = validate.checked_values(part.kind, section, owner=where)
        return [RobotPart(part.section, None, values)] if values else []
    entries: list[tuple[str, object, str | None]]
    if isinstance(section, dict):  # servos: {servo_id: {metric: value}}
        entries = [(str(key), value, None) for key, value in section.items()]
    elif isinstance(section, list):  # sensors: [{sensor_type, unit, value}]
        entries = [_sensor(entry) for entry in section]
    else:
        raise Rejected(RejectReason.MALFORMED_JSON, f"{part.section} must be an object or list")
    if len(entries) > MAX_INSTANCES:
        raise Rejected(RejectReason.OUT_OF_RANGE, f"more than {MAX_INSTANCES} {part.section}")
    out = []
    for instance, raw, unit in entries:
        if not INSTANCE.match(instance) or not isinstance(raw, dict):
            raise Rejected(
                RejectReason.MALFORMED_JSON, f"{part.section} entry {instance[:40]!r} malformed"
            )
        checked = validate.checked_values(part.kind, raw, owner=f"{where} {instance}")
        if checked:
            out.append(RobotPart(part.section, instance, checked, unit))
    return out


def _sensor(entry: object) -> tuple[str, object, str | None]:
    if not isinstance(entry, dict) or not isinstance(entry.get("sensor_type"), str):
        raise Rejected(RejectReason.MALFORMED_JSON, "a sensor needs a sensor_type")
    extra = sorted(set(entry) - {"sensor_type", "unit", "value"})
    if extra:
        raise Rejected(RejectReason.MALFORMED_JSON, f"sensor keys {extra[:5]} unknown"[:200])
    unit = entry.get("unit")
    if unit is not None and (not isinstance(unit, str) or len(unit) > 16):
        raise Rejected(RejectReason.MALFORMED_JSON, "a sensor's unit is a short string")
    values = {"value": entry["value"]} if "value" in entry else {}
    return str(entry["sensor_type"]), values, unit


def _location(value: object) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - _LOCATION_KEYS:
        raise Rejected(RejectReason.MALFORMED_JSON, "location is {x, y, z, heading}")
    out = {}
    for key, number in value.items():
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise Rejected(RejectReason.WRONG_TYPE, f"location.{key} must be a number")
        if not math.isfinite(number) or abs(number) > 1e9:
            raise Rejected(RejectReason.OUT_OF_RANGE, f"location.{key}={number!r}")
        out[str(key)] = float(number)
    return out


def _job(payload: bytes, ctx: Context) -> JobReport:
    """A robot's report on a job's progress."""
    body = json_object(payload, _JOB_KEYS)
    _own_id(body, "robot_id", ctx)
    key, status = body.get("job_id"), body.get("status", "active")
    if not isinstance(key, str) or not isinstance(status, str):
        raise Rejected(RejectReason.MALFORMED_JSON, "job_id and status must be strings")
    total, done = body.get("items_total"), body.get("items_done", 0)
    if total is not None and (isinstance(total, bool) or not isinstance(total, int)):
        raise Rejected(RejectReason.WRONG_TYPE, "items_total must be a whole number")
    if isinstance(done, bool) or not isinstance(done, int):
        raise Rejected(RejectReason.WRONG_TYPE, "items_done must be a whole number")
    last, reason = body.get("last_item"), body.get("reason")
    if last is not None and not isinstance(last, dict):
        raise Rejected(RejectReason.MALFORMED_JSON, "last_item must be an object")
    if reason is not None and not isinstance(reason, str):
        raise Rejected(RejectReason.MALFORMED_JSON, "reason must be a string")
    return JobReport(
        hostname=ctx.hostname,
        received_at=ctx.received_at,
        device_ts=device_stamp(body, ctx),
        job_key=key,
        items_total=total,
        items_done=done,
        last_item=last,
        status=status,
        reason=reason,
    )


def _no_constant(name: str) -> float:
    """NaN and Infinity are not JSON: refuse them instead of reading them as floats."""
    raise ValueError(f"{name} is not a JSON value")
