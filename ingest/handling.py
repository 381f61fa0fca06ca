"""Handling: a batch of validated messages becomes the store operations of one transaction.

The batch is walked in arrival order, device by device state kept in memory, so a device's
messages take effect in the order it sent them even though the writes are grouped per kind.
The walk itself does no I/O: ``BatchHandler`` loads what it needs first, then writes the plan.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from ingest.cdc import CdcState, CdcTracker, Decision, MetricReading, Observation, StateKey
from ingest.commands import CommandTiming, Reply, apply_reply, set_device_id
from ingest.kinds import DeviceKind
from ingest.kinds import robot as robot_kind
from ingest.kinds import telemetry as telemetry_kind
from ingest.kinds.panel import PANEL, PanelReading
from ingest.kinds.telemetry import DeviceType, checked_values
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
)
from stores.influx.points import (
    TELEMETRY,
    AlarmPoint,
    DeviceTags,
    HeartbeatPoint,
    MetricPoint,
    alarm_line,
    heartbeat_line,
    metric_line,
)
from stores.postgres.commands_store import CommandRow, NewCommand
from stores.postgres.ingest_store import (
    AlarmChange,
    BatchTx,
    CdcRow,
    ConnectionChange,
    DeadLetter,
    DeviceView,
    IngestStore,
    JobChange,
    MetricStateRow,
    NewDevice,
)

logger = logging.getLogger(__name__)

PAYLOAD_LOG_BYTES = 48

# StatusMessage field -> device_status column, where the names differ.
_STATUS_COLUMNS = {
    "firmware": "firmware_version",
    **{
        name: name
        for name in [
            "partition",
            "ota_validated",
            "uptime",
            "boot_count",
            "device_state",
            "state_duration",
            "free_heap",
            "min_heap",
            "network_type",
            "ip_address",
            "rssi",
            "connected",
            "has_ip",
            "mqtt_connected",
            "ntp_synced",
            "last_ntp_sync",
            "panic1",
            "panic2",
            "box_sw",
            "siren",
            "turret",
            "panic1_count",
            "panic2_count",
            "tamper_count",
            "wifi_disconnects",
            "mqtt_disconnects",
            "error_count",
            "temperature",
            "humidity",
            "error_flags",
        ]
    },
}
_HEARTBEAT_COLUMNS = [
    "uptime",
    "panic1",
    "panic2",
    "box_sw",
    "siren",
    "turret",
    "temperature",
    "humidity",
    "fan_pwm_duty",
    "network_type",
]
_INPUT_IO = {"PANIC1": "panic1", "PANIC2": "panic2", "TAMPER": "box_sw"}
_INPUT_COUNTER = {"PANIC1": "panic1_count", "PANIC2": "panic2_count", "TAMPER": "tamper_count"}
_OUTPUTS = {1: "siren", 2: "turret"}
_RUNNING = frozenset({"ACTIVE", "STARTING", "STOPPING"})
_ONE_MS = timedelta(milliseconds=1)


def _whole_ms(when: datetime) -> datetime:
    """``when`` without its sub-millisecond part."""
    return when.replace(microsecond=when.microsecond - when.microsecond % 1000)


SYNC_ALERT = "device_id_sync_failed"
DEFAULT_TIMING = CommandTiming()


@dataclass(frozen=True, slots=True)
class Item:
    """One received message after decoding: the message, or why it was rejected."""

    topic: str
    payload: bytes
    received_at: datetime
    message: DeviceMessage | None
    rejection: Rejected | None = None


@dataclass(slots=True)
class _Device:
    """A device's state while its messages of the batch are applied."""

    view: DeviceView
    values: dict[str, object]
    patch: dict[str, object] = field(default_factory=dict)
    device_patch: dict[str, object] = field(default_factory=dict)
    open_alarms: set[tuple[str, int]] = field(default_factory=set)

    @property
    def device_id(self) -> int:
        return self.view.device_id

    def set(self, column: str, value: object) -> None:
        self.values[column] = value
        self.patch[column] = value

    def tags(self) -> DeviceTags:
        return DeviceTags(
            device_id=self.device_id,
            hostname=str(self.values["hostname"] or ""),
            zone=self.values["zone"],  # type: ignore[arg-type]
            country=self.values["country"],  # type: ignore[arg-type]
        )


@dataclass(slots=True)
class Plan:
    """Everything one batch writes."""

    dead_letters: list[DeadLetter] = field(default_factory=list)
    alarm_changes: list[AlarmChange] = field(default_factory=list)
    sequences: list[tuple[int, int, bytes, datetime]] = field(default_factory=list)
    connections: list[ConnectionChange] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    cdc_devices: set[StateKey] = field(default_factory=set)
    counts: Counter[tuple[int, datetime, str]] = field(default_factory=Counter)
    command_updates: dict[int, dict[str, object]] = field(default_factory=dict)
    new_commands: list[NewCommand] = field(default_factory=list)
    robot_patches: dict[int, dict[str, object]] = field(default_factory=dict)
    jobs: list[JobChange] = field(default_factory=list)
    duplicates: int = 0
    accepted: int = 0
    ignored: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a committed batch did."""

    accepted: int
    duplicates: int
    dead_letters: Counter[str]
    points_written: int
    point_ids: list[int]
    lines: list[str]
    ignored: int = 0
    heartbeats_received: int = 0
    heartbeat_points: int = 0


def reject(item: Item, reason: RejectReason, detail: str) -> DeadLetter:
    """A dead letter for ``item``, logged with its topic and a short prefix of its payload."""
    logger.warning(
        "dead letter %s on %s: %s (payload %d bytes: %s)",
        reason.value,
        item.topic[:120],
        detail[:200],
        len(item.payload),
        item.payload[:PAYLOAD_LOG_BYTES].hex(),
    )
    return DeadLetter(
        topic=item.topic,
        payload=item.payload,
        reason=reason.value,
        detail=detail,
        received_at=item.received_at,
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _hour(when: datetime) -> datetime:
    return when.replace(minute=0, second=0, microsecond=0)


class Walk:
    """Applies a batch's messages in order to in-memory device states, building a Plan."""

    def __init__(
        self,
        devices: dict[int, _Device],
        ids_by_mac: dict[str, int],
        ids_by_hostname: dict[str, int],
        digests: dict[tuple[int, int], bytes],
        tracker: CdcTracker,
        *,
        commands: dict[str, CommandRow] | None = None,
        syncing: set[int] | None = None,
        timing: CommandTiming = DEFAULT_TIMING,
        serials: dict[str, int] | None = None,
        types: dict[int, DeviceType] | None = None,
        robots: dict[str, int] | None = None,
    ) -> None:
        self._devices = devices
        self._robots = robots or {}
        self._by_serial = serials or {}
        self._types = types or {}
        self._by_mac = ids_by_mac
        self._by_hostname = ids_by_hostname
        self._digests = digests
        self._tracker = tracker
        self._commands = commands or {}
        self._syncing = syncing or set()
        self._timing = timing
        self.plan = Plan()

    def apply(self, item: Item) -> None:
        """Apply one item; a message that cannot be used becomes a dead letter."""
        if item.rejection is not None:
            rejection = item.rejection
            self.plan.dead_letters.append(reject(item, rejection.reason, rejection.detail))
            return
        message = item.message
        if message is None:
            self.plan.ignored += 1  # fleetwatch's own command, seen on the wildcard
            return
        try:
            match message:
                case StatusReport():
                    self._status(self._device(message.mac), message)
                case HeartbeatReport():
                    self._heartbeat(self._known(message.mac), message)
                case AlarmReport():
                    self._alarm(self._known(message.mac), message)
                case LastWill():
                    self._last_will(self._known_host(message.hostname), message)
                case CommandReply():
                    self._reply(message)
                case TelemetryReport():
                    self._telemetry(self._known_serial(message.hostname), message)
                case RobotReport():
                    self._robot(self._known_robot(message.hostname), message)
                case JobReport():
                    self._job(self._known_robot(message.hostname), message)
                case _:
                    raise TypeError(f"unexpected message {type(message).__name__}")
        except Rejected as exc:
            self.plan.dead_letters.append(reject(item, exc.reason, exc.detail))
            return
        self.plan.accepted += 1

    def _device(self, mac: str) -> _Device:
        return self._devices[self._by_mac[mac]]

    def _known(self, mac: str) -> _Device:
        device_id = self._by_mac.get(mac)
        if device_id is None:
            raise Rejected(RejectReason.UNREGISTERED, f"no device with MAC {mac}")
        return self._devices[device_id]

    def _known_serial(self, serial: str) -> _Device:
        device_id = self._by_serial.get(serial)
        if device_id is None or device_id not in self._types:
            raise Rejected(
                RejectReason.UNKNOWN_SERIAL,
                f"no device with serial {serial} (add it, or let its type auto-register)",
            )
        return self._devices[device_id]

    def _known_robot(self, robot_id: str) -> _Device:
        device_id = self._robots.get(robot_id)
        if device_id is None:
            raise Rejected(
                RejectReason.UNREGISTERED, f"no robot {robot_id} (its state message registers it)"
            )
        return self._devices[device_id]

    def _robot(self, dev: _Device, msg: RobotReport) -> None:
        """A robot's state: each part's stream judged by its declaration and written to its
        measurement; the robots row follows what the robot says of itself."""
        results = [self._robot_part(dev, msg, part) for part in msg.parts]
        if results and all(result is None for result in results):
            self.plan.duplicates += 1  # every part older than what was processed: redelivery
            return
        self._seen(dev, msg.received_at, "robot")
        patch = self.plan.robot_patches.setdefault(dev.device_id, {})
        patch["last_seen"] = msg.received_at
        patch["status"] = msg.status or "online"
        if msg.location is not None:
            patch["location"] = msg.location
        if msg.ip_address is not None:
            patch["ip_address"] = msg.ip_address

    def _robot_part(self, dev: _Device, msg: RobotReport, part: RobotPart) -> bool | None:
        """Observe one part's values; whether a point was written, None for a duplicate."""
        spec = robot_kind.PARTS[part.section]
        key: StateKey = (dev.device_id, spec.stream(part.instance))
        state = self._tracker.state(key)
        before = state.reference if state is not None else None
        # A metric the part left out keeps its stored value: a reading is a whole state.
        merged = {
            m.name: part.values[m.name] if m.name in part.values else _value(before, m.name)
            for m in spec.kind.metrics
        }
        when = self._stream_time(key, msg.event_time)
        reading = MetricReading(spec.kind.name, when, msg.device_ts, merged)
        decision = self._tracker.observe(key, reading, spec.kind)
        self.plan.cdc_devices.add(key)
        if decision.duplicate:
            return None
        hour = _hour(when)
        self.plan.counts[(dev.device_id, hour, "received")] += 1
        if not decision.write or decision.change_type is None:
            return False
        self.plan.counts[(dev.device_id, hour, "written")] += 1
        tags = {"robot_id": str(dev.values["hostname"] or ""), "device_id": str(dev.device_id)}
        if spec.instance_tag is not None and part.instance is not None:
            tags[spec.instance_tag] = part.instance
        if part.unit:
            tags["unit"] = part.unit
        self.plan.lines.append(
            metric_line(
                MetricPoint(
                    measurement=spec.measurement,
                    tags=tags,
                    time=when,
                    values=merged,
                    is_online=True,
                    change_type=decision.change_type.value,
                    changes=decision.changes,
                    device_time=msg.device_ts,
                )
            )
        )
        return True

    def _job(self, dev: _Device, msg: JobReport) -> None:
        """A job's progress: applied in the store so that a redelivered or late report
        never moves a job back (items only grow, a finished job stays finished)."""
        self._seen(dev, msg.received_at, "job")
        self.plan.jobs.append(
            JobChange(
                device_id=dev.device_id,
                robot_id=str(dev.values["hostname"] or ""),
                job_key=msg.job_key,
                at=msg.received_at,
                items_total=msg.items_total,
                items_done=msg.items_done,
                last_item=msg.last_item,
                status=msg.status,
                reason=msg.reason,
            )
        )

    def _kind(self, dev: _Device) -> DeviceKind:
        """The declaration the device's readings are judged by."""
        device_type = self._types.get(dev.device_id)
        return device_type.kind if device_type is not None else self._tracker.kind(PANEL.name)

    def _telemetry(self, dev: _Device, msg: TelemetryReport) -> None:
        """A reading of a device of a declared type: checked against the type, then CDC."""
        device_type = self._types[dev.device_id]
        values = checked_values(device_type, msg.metrics)
        state = self._tracker.snapshot([dev.device_id]).get(dev.device_id)
        # A metric the message left out keeps its stored value: a reading is a whole state.
        before = state.reference if state is not None else None
        merged = {
            m.name: values[m.name] if m.name in values else _value(before, m.name)
            for m in device_type.metrics
        }
        reading = MetricReading(
            telemetry_kind.KIND, self._history_time(dev, msg.event_time), msg.device_ts, merged
        )
        hour = _hour(reading.received_at)
        decision = self._tracker.observe(dev.device_id, reading, device_type.kind)
        self.plan.cdc_devices.add(dev.device_id)
        if decision.duplicate:
            self.plan.duplicates += 1
            return
        self._seen(dev, msg.received_at, "telemetry")
        self.plan.counts[(dev.device_id, hour, "received")] += 1
        if decision.write and decision.change_type is not None:
            self.plan.counts[(dev.device_id, hour, "written")] += 1
            self.plan.lines.append(self._history_line(dev, reading, decision))

    def _history_line(self, dev: _Device, reading: Observation, decision: Decision) -> str:
        """The point of a CDC write, in its kind's measurement."""
        if isinstance(reading, PanelReading):
            return heartbeat_line(_history_point(dev, reading, decision))
        device_type = self._types[dev.device_id]
        return metric_line(
            MetricPoint(
                measurement=TELEMETRY,
                tags={
                    "device_id": str(dev.device_id),
                    "hostname": str(dev.values["hostname"] or ""),
                    "device_type": device_type.name,
                },
                time=reading.received_at,
                values={m.name: reading.value(m.name) for m in device_type.metrics},
                is_online=reading.is_online,
                change_type=decision.change_type.value if decision.change_type else "MANUAL",
                changes=decision.changes,
                device_time=reading.device_ts,
            )
        )

    def _known_host(self, hostname: str) -> _Device:
        device_id = self._by_hostname.get(hostname)
        if device_id is None:
            raise Rejected(RejectReason.UNREGISTERED, f"no device with hostname {hostname}")
        return self._devices[device_id]

    def _seen(self, dev: _Device, when: datetime, via: str) -> None:
        """Any message proves the device is alive; coming back from offline is logged."""
        dev.set("last_seen", when)
        if not dev.values["is_online"]:
            dev.set("is_online", True)
            if dev.values["device_state"] == "OFFLINE":
                dev.set("device_state", "UNKNOWN")
            self.plan.connections.append(
                ConnectionChange(dev.device_id, "connected", when, json.dumps({"via": via}))
            )
            if via not in ("heartbeat", "telemetry"):  # their reading carries is_online=True
                self._connection_point(dev, when, online=True)

    def _history_time(self, dev: _Device, when: datetime) -> datetime:
        """``when``, moved just past the device's last point if it would land on or before it.

        Points are keyed by series and time: two at the same millisecond would overwrite each
        other, and a backlog received in a burst arrives with near-identical server times.
        """
        return self._stream_time(dev.device_id, when)

    def _stream_time(self, key: StateKey, when: datetime) -> datetime:
        """``when``, moved just past the last point of the device's stream ``key`` if it
        would land on or before it (see ``_history_time``)."""
        state = self._tracker.state(key)
        if state is None:
            return when
        # Compared in whole milliseconds, the precision points are written with: two server
        # times a few microseconds apart would otherwise share one point time.
        last = _whole_ms(state.written_at)
        if _whole_ms(when) <= last:
            return last + _ONE_MS
        return when

    def _status(self, dev: _Device, msg: StatusReport) -> None:
        self._seen(dev, msg.received_at, "status")
        statics: dict[str, object] = {"hostname": msg.hostname, "country": msg.country}
        statics["zone"] = msg.zone
        if msg.latitude is not None and msg.longitude is not None:
            statics["latitude"], statics["longitude"] = msg.latitude, msg.longitude
        for column, value in statics.items():
            if value is not None and dev.values[column] != value:
                dev.values[column] = value
                dev.device_patch[column] = value
        for attribute, column in _STATUS_COLUMNS.items():
            dev.set(column, getattr(msg, attribute))
        self._sync(dev, msg.device_db_id, msg.received_at)
        dev.set("last_status_update", msg.received_at)

    def _heartbeat(self, dev: _Device, msg: HeartbeatReport) -> None:
        reading = PanelReading(
            received_at=self._history_time(dev, msg.event_time),
            device_ts=msg.device_ts,
            temperature=msg.temperature,
            humidity=msg.humidity,
            fan_pwm_duty=msg.fan_pwm_duty,
            panic1=msg.panic1,
            panic2=msg.panic2,
            box_sw=msg.box_sw,
            siren=msg.siren,
            turret=msg.turret,
            device_state=str(dev.values["device_state"]),
            is_online=True,
        )
        hour = _hour(reading.received_at)
        decision = self._tracker.observe(dev.device_id, reading)
        self.plan.cdc_devices.add(dev.device_id)
        if decision.duplicate:
            # Older than what was processed: a redelivery. Its values are stale too.
            self.plan.duplicates += 1
            return
        self._seen(dev, msg.received_at, "heartbeat")
        for column in _HEARTBEAT_COLUMNS:
            dev.set(column, getattr(msg, column))
        if msg.firmware:
            dev.set("firmware_version", msg.firmware)
        dev.set("last_heartbeat", msg.received_at)
        self._sync(dev, msg.device_db_id, msg.received_at)
        self.plan.counts[(dev.device_id, hour, "received")] += 1
        if decision.write and decision.change_type is not None:
            self.plan.counts[(dev.device_id, hour, "written")] += 1
            point = _history_point(dev, reading, decision, uptime=msg.uptime)
            self.plan.lines.append(heartbeat_line(point))

    def _alarm(self, dev: _Device, msg: AlarmReport) -> None:
        key = (dev.device_id, msg.sequence)
        last = dev.values["last_alarm_sequence"]
        if isinstance(last, int) and msg.sequence <= last:
            if self._digests.get(key) == msg.digest:
                self.plan.duplicates += 1  # the same event delivered again: nothing to do
                return
            raise Rejected(
                RejectReason.REPLAY,
                f"sequence {msg.sequence} <= last accepted {last} with different content",
            )
        self._digests[key] = msg.digest
        self.plan.sequences.append((dev.device_id, msg.sequence, msg.digest, msg.received_at))
        dev.set("last_alarm_sequence", msg.sequence)
        self._seen(dev, msg.received_at, "alarm")
        action = self._alarm_action(dev, msg)
        if action is not None:
            self.plan.alarm_changes.append(_alarm_change(dev.device_id, action, msg))
        self.plan.lines.append(alarm_line(_alarm_point(dev.tags(), msg)))

    def _alarm_action(self, dev: _Device, msg: AlarmReport) -> str | None:
        """Update I/O and output columns; the alarm_events action for this message."""
        running = msg.event_state in _RUNNING
        kind = (msg.alarm_type, msg.output_type or 0)
        if msg.is_output:
            output = _OUTPUTS[msg.output_type or 0]
            dev.set(output, running)
            dev.set(f"{output}_active", running)
            dev.set(f"{output}_pattern", str(msg.pattern_type) if running else None)
            dev.set("last_output_change", msg.received_at)
        elif msg.alarm_type in _INPUT_IO:
            dev.set(_INPUT_IO[msg.alarm_type], running)
        action = _transition(kind in dev.open_alarms, msg.event_state)
        if action == "open":
            dev.open_alarms.add(kind)
            if not msg.is_output:
                dev.set("last_alarm_at", msg.received_at)
                counter = _INPUT_COUNTER.get(msg.alarm_type)
                if counter:
                    dev.set(counter, int(dev.values[counter] or 0) + 1)  # type: ignore[call-overload]
        elif action == "resolve":
            dev.open_alarms.discard(kind)
        dev.set("alarm_active", any(t != "OUTPUT_EVENT" for t, _ in dev.open_alarms))
        return action

    def _sync(self, dev: _Device, reported: int, now: datetime) -> None:
        """Track whether the device knows its id; queue SET_DEVICE_ID (with backoff) if not."""
        if reported == dev.device_id:
            if not dev.values["device_synced"]:
                dev.set("device_synced", True)
                attempts = int(dev.values["sync_attempts"] or 0)  # type: ignore[call-overload]
                if attempts:
                    dev.set("sync_attempts", 0)
                if attempts >= self._timing.sync_alert_after:  # only then can an alert be open
                    self.plan.alarm_changes.append(_sync_alert(dev.device_id, "resolve", now, 0))
            return
        dev.set("device_synced", False)
        if dev.device_id in self._syncing:
            return  # one SET_DEVICE_ID at a time; its own retries cover delivery
        attempts = int(dev.values["sync_attempts"] or 0)  # type: ignore[call-overload]
        last = dev.values["last_sync_attempt"]
        if isinstance(last, datetime) and now - last < self._timing.sync_backoff(attempts - 1):
            return
        if attempts >= self._timing.sync_alert_after:
            self.plan.alarm_changes.append(_sync_alert(dev.device_id, "open", now, attempts))
        spec = set_device_id(dev.device_id)
        self.plan.new_commands.append(
            NewCommand(
                device_id=dev.device_id,
                command_type=spec.command_type,
                command_data=spec.as_json(),
                auth_level=spec.required_level,
                initiated_by="fleetwatch:device-id-sync",
                max_retries=self._timing.max_retries,
                expires_at=now + self._timing.offline_expiry,
            )
        )
        self._syncing.add(dev.device_id)
        dev.set("sync_attempts", attempts + 1)
        dev.set("last_sync_attempt", now)

    def _reply(self, msg: CommandReply) -> None:
        row = self._commands.get(msg.request_id)
        if row is None:
            raise Rejected(RejectReason.UNKNOWN_REQUEST, f"no command {msg.request_id}")
        if row.hostname != msg.hostname:
            raise Rejected(
                RejectReason.UNKNOWN_REQUEST,
                f"command {msg.request_id} was sent to {row.hostname}, not {msg.hostname}",
            )
        dev = self._devices[row.device_id]
        self._seen(dev, msg.received_at, "response")
        reply = Reply(
            stage=msg.stage,
            success=msg.success,
            response_code=msg.response_code,
            error_message=msg.error_message,
            data=msg.data,
            received_at=msg.received_at,
        )
        changes = apply_reply(
            row.status,
            row.acknowledged_at is not None,
            row.response_data is not None,
            reply,
            self._timing,
        )
        if changes is None:
            self.plan.duplicates += 1
            return
        self.plan.command_updates.setdefault(row.id, {}).update(changes)
        self._commands[msg.request_id] = replace(
            row,
            status=str(changes.get("status", row.status)),
            acknowledged_at=changes.get("acknowledged_at", row.acknowledged_at),
            response_data=changes.get("response_data", row.response_data),
        )

    def went_silent(self, device_id: int, now: datetime, last_seen: object) -> None:
        """No message for too long: offline, logged as a timeout, marked in the history."""
        dev = self._devices[device_id]
        dev.set("is_online", False)
        dev.set("device_state", "OFFLINE")
        details = json.dumps({"last_seen": str(last_seen)})
        self.plan.connections.append(ConnectionChange(device_id, "timeout", now, details))
        self._connection_point(dev, now, online=False)
        self._robot_offline(dev)

    def _robot_offline(self, dev: _Device) -> None:
        if dev.view.kind == robot_kind.KIND:
            self.plan.robot_patches.setdefault(dev.device_id, {})["status"] = "offline"

    def _last_will(self, dev: _Device, msg: LastWill) -> None:
        if not dev.values["is_online"]:
            return
        dev.set("is_online", False)
        dev.set("device_state", "OFFLINE")
        self.plan.connections.append(
            ConnectionChange(
                dev.device_id, "disconnected", msg.received_at, json.dumps({"via": "last_will"})
            )
        )
        self._connection_point(dev, msg.received_at, online=False)
        self._robot_offline(dev)

    def _connection_point(self, dev: _Device, when: datetime, *, online: bool) -> None:
        """Store the connection change in the history as the last known values, re-flagged."""
        state = self._tracker.snapshot([dev.device_id]).get(dev.device_id)
        if state is None:
            return  # never sent a heartbeat: there is no series to mark
        when = self._history_time(dev, when)
        reading = state.reference.moved(when, None, online)
        decision = self._tracker.observe(dev.device_id, reading, self._kind(dev))
        self.plan.cdc_devices.add(dev.device_id)
        if decision.write and decision.change_type is not None:
            self.plan.counts[(dev.device_id, _hour(when), "written")] += 1
            self.plan.lines.append(self._history_line(dev, reading, decision))


def _value(reading: Observation | None, name: str) -> bool | int | float | str | None:
    return None if reading is None else reading.value(name)


def _history_point(
    dev: _Device, reading: PanelReading, decision: Decision, *, uptime: int | None = None
) -> HeartbeatPoint:
    """The heartbeat-measurement point of a CDC write."""
    return HeartbeatPoint(
        tags=dev.tags(),
        time=reading.received_at,
        temperature=reading.temperature,
        humidity=reading.humidity,
        fan_pwm_duty=reading.fan_pwm_duty,
        panic1=reading.panic1,
        panic2=reading.panic2,
        box_sw=reading.box_sw,
        siren=reading.siren,
        turret=reading.turret,
        is_online=reading.is_online,
        device_state=reading.device_state,
        uptime=uptime,
        change_type=decision.change_type.value if decision.change_type else "MANUAL",
        changes=decision.changes,
        device_time=reading.device_ts,
    )


def _sync_alert(device_id: int, action: str, now: datetime, attempts: int) -> AlarmChange:
    """fleetwatch's own alert (alarm type UNKNOWN) that a device will not take its id."""
    return AlarmChange(
        action=action,
        device_id=device_id,
        alarm_type="UNKNOWN",
        output_type=None,
        sequence=None,
        timestamp=now,
        device_timestamp=None,
        event_state="ACTIVE" if action == "open" else "INACTIVE",
        priority="HIGH",
        physical_state=False,
        pattern_type=None,
        duration_seconds=0,
        elapsed_seconds=0,
        metadata=json.dumps({"alert": SYNC_ALERT, "failed_attempts": attempts}),
    )


def _transition(is_open: bool, state: str) -> str | None:
    """alarm_events action for an event state, given whether that kind is open."""
    if state == "TEST":
        return "record"
    if state in ("ACTIVE", "STARTING"):
        return "update" if is_open else "open"
    if state == "STOPPING":
        return "update" if is_open else "open"
    return "resolve" if is_open else None  # INACTIVE with nothing open: already resolved


def _alarm_change(device_id: int, action: str, msg: AlarmReport) -> AlarmChange:
    return AlarmChange(
        action=action,
        device_id=device_id,
        alarm_type=msg.alarm_type,
        output_type=msg.output_type,
        sequence=msg.sequence,
        timestamp=msg.received_at,
        device_timestamp=msg.device_ts,
        event_state=msg.event_state,
        priority=msg.priority,
        physical_state=msg.physical_state,
        pattern_type=msg.pattern_type,
        duration_seconds=msg.duration_seconds,
        elapsed_seconds=msg.elapsed_seconds,
    )


def _alarm_point(tags: DeviceTags, msg: AlarmReport) -> AlarmPoint:
    return AlarmPoint(
        tags=tags,
        time=msg.event_time,
        alarm_type=msg.alarm_type,
        event_state=msg.event_state,
        priority=msg.priority,
        sequence=msg.sequence,
        physical_state=msg.physical_state,
        output_type=msg.output_type,
        pattern_type=msg.pattern_type,
        duration_seconds=msg.duration_seconds,
        elapsed_seconds=msg.elapsed_seconds,
    )


def _working(view: DeviceView, open_alarms: set[tuple[int, str, int]]) -> _Device:
    values: dict[str, object] = {
        name: getattr(view, name) for name in DeviceView.__dataclass_fields__
    }
    mine = {(t, o) for d, t, o in open_alarms if d == view.device_id}
    return _Device(view=view, values=values, open_alarms=mine)


def _types_of(tx: BatchTx, views: dict[int, DeviceView]) -> dict[int, DeviceType]:
    """The declared type of each of these devices that has one."""
    typed = {i: v.device_type_id for i, v in views.items() if v.device_type_id is not None}
    if not typed:
        return {}
    types = {row.id: telemetry_kind.from_row(row) for row in tx.device_types(typed.values())}
    return {i: types[t] for i, t in typed.items() if t in types}


def _panel(reading: object) -> PanelReading:
    """A panel's CDC reference (the only kind whose state this handler keeps)."""
    if not isinstance(reading, PanelReading):
        raise TypeError(f"expected a panel reading, got {type(reading).__name__}")
    return reading


def cdc_row(device_id: int, state: CdcState) -> CdcRow:
    """The persisted form of a CDC state."""
    ref = _panel(state.reference)
    return CdcRow(
        device_id=device_id,
        written_at=ref.received_at,
        temperature=ref.temperature,
        humidity=ref.humidity,
        fan_pwm_duty=ref.fan_pwm_duty,
        panic1=ref.panic1,
        panic2=ref.panic2,
        box_sw=ref.box_sw,
        siren=ref.siren,
        turret=ref.turret,
        device_state=ref.device_state,
        is_online=ref.is_online,
        last_device_ts=state.last_device_ts,
    )


def metric_state_row(key: StateKey, state: CdcState) -> MetricStateRow:
    """The persisted form of a CDC state of a device (or one of its streams) whose kind is
    declared by metrics alone."""
    ref = state.reference
    if not isinstance(ref, MetricReading):
        raise TypeError(f"expected a metric reading, got {type(ref).__name__}")
    device_id, stream = key if isinstance(key, tuple) else (key, "")
    return MetricStateRow(
        device_id=device_id,
        stream=stream,
        kind=ref.kind,
        written_at=ref.received_at,
        values=dict(ref.values),
        is_online=ref.is_online,
        last_device_ts=state.last_device_ts,
    )


def metric_state(row: MetricStateRow) -> CdcState:
    """A CDC state from its persisted form."""
    reference = MetricReading(row.kind, row.written_at, None, dict(row.values), row.is_online)
    return CdcState(reference=reference, last_device_ts=row.last_device_ts)


def state_key(row: MetricStateRow) -> StateKey:
    """The tracker's key of a persisted state."""
    return (row.device_id, row.stream) if row.stream else row.device_id


def cdc_state(row: CdcRow) -> CdcState:
    """A CDC state from its persisted form."""
    reference = PanelReading(
        received_at=row.written_at,
        device_ts=None,
        temperature=row.temperature,
        humidity=row.humidity,
        fan_pwm_duty=row.fan_pwm_duty,
        panic1=row.panic1,
        panic2=row.panic2,
        box_sw=row.box_sw,
        siren=row.siren,
        turret=row.turret,
        device_state=row.device_state,
        is_online=row.is_online,
    )
    return CdcState(reference=reference, last_device_ts=row.last_device_ts)


class BatchHandler:
    """Applies batches of decoded items to PostgreSQL in one transaction each.

    The CDC tracker is advanced during the walk and rolled back if the transaction fails, so
    a retried batch is judged exactly as the first attempt was.
    """

    def __init__(
        self, store: IngestStore, tracker: CdcTracker, timing: CommandTiming = DEFAULT_TIMING
    ) -> None:
        self._store = store
        self._tracker = tracker
        self._timing = timing
        # Batches and liveness sweeps share the tracker: one at a time.
        self._lock = threading.Lock()

    def seed(self) -> int:
        """Load every persisted CDC state; returns how many."""
        rows = self._store.load_cdc_states()
        self._tracker.seed({row.device_id: cdc_state(row) for row in rows})
        typed = self._store.load_metric_states()
        self._tracker.seed({state_key(row): metric_state(row) for row in typed})
        return len(rows) + len(typed)

    def handle(self, items: Sequence[Item]) -> Outcome:
        """Write one batch; raises StoreUnavailableError (nothing written) to be retried."""
        return self._transaction(lambda tx: self._walk(tx, items))

    def sweep_silent(self, now: datetime, silence: timedelta, limit: int = 10_000) -> Outcome:
        """Mark devices silent for ``silence`` offline (timeout), with log rows and points."""
        return self._transaction(
            lambda tx: self._silence(tx, cutoff=now - silence, now=now, limit=limit)
        )

    def _transaction(self, build: Callable[[BatchTx], Walk]) -> Outcome:
        with self._lock:
            # The tracker remembers what the walk changes: a batch that does not commit is
            # undone, so its retry is judged exactly as this attempt was.
            self._tracker.begin()
            try:
                with self._store.batch() as tx:
                    walk = build(tx)
                    plan = walk.plan
                    point_ids = self._write(tx, walk, plan)
            except BaseException:
                self._tracker.rollback()
                raise
            self._tracker.commit()
        reasons = Counter(letter.reason for letter in plan.dead_letters)
        return Outcome(
            accepted=plan.accepted,
            duplicates=plan.duplicates,
            dead_letters=reasons,
            points_written=len(plan.lines),
            point_ids=point_ids,
            lines=plan.lines,
            ignored=plan.ignored,
            heartbeats_received=sum(n for k, n in plan.counts.items() if k[2] == "received"),
            heartbeat_points=sum(n for k, n in plan.counts.items() if k[2] == "written"),
        )

    def _walk(self, tx: BatchTx, items: Sequence[Item]) -> Walk:
        messages = [item.message for item in items if item.message is not None]
        macs = {
            m.mac for m in messages if isinstance(m, StatusReport | HeartbeatReport | AlarmReport)
        }
        by_mac = tx.find_by_mac(macs)
        new = {
            m.mac: NewDevice(m.mac, m.hostname, m.country, m.zone, m.latitude, m.longitude)
            for m in messages
            if isinstance(m, StatusReport) and m.mac not in by_mac
        }
        by_mac.update(tx.register(list(new.values())))
        wills = {m.hostname for m in messages if isinstance(m, LastWill)}
        by_host = tx.find_by_hostname(wills) if wills else {}
        replies = {m.request_id for m in messages if isinstance(m, CommandReply)}
        commands = tx.commands(replies) if replies else {}
        by_serial = self._typed_devices(tx, [m for m in messages if isinstance(m, TelemetryReport)])
        robots = tx.find_robots(
            {m.hostname for m in messages if isinstance(m, RobotReport | JobReport)}
        )
        new_robots = {m.hostname for m in messages if isinstance(m, RobotReport)} - set(robots)
        if new_robots:
            robots.update(tx.register_robots(new_robots))
        ids = (
            set(by_mac.values())
            | set(by_host.values())
            | {c.device_id for c in commands.values()}
            | set(by_serial.values())
            | set(robots.values())
        )
        views = tx.lock_views(ids)
        alarm_ids = {
            by_mac[m.mac] for m in messages if isinstance(m, AlarmReport) and m.mac in by_mac
        }
        open_alarms = tx.open_alarms(alarm_ids) if alarm_ids else set()
        digests = tx.alarm_digests(
            (by_mac[m.mac], m.sequence)
            for m in messages
            if isinstance(m, AlarmReport) and m.mac in by_mac
        )
        devices = {i: _working(v, open_alarms) for i, v in views.items()}
        unsynced = {
            m.mac
            for m in messages
            if isinstance(m, StatusReport | HeartbeatReport)
            and m.mac in by_mac
            and m.device_db_id != by_mac[m.mac]
        }
        syncing = tx.devices_syncing(by_mac[mac] for mac in unsynced) if unsynced else set()
        walk = Walk(
            devices,
            by_mac,
            by_host,
            digests,
            self._tracker,
            commands=commands,
            syncing=syncing,
            timing=self._timing,
            serials=by_serial,
            types=_types_of(tx, views),
            robots=robots,
        )
        for item in items:
            walk.apply(item)
        return walk

    @staticmethod
    def _typed_devices(tx: BatchTx, readings: Sequence[TelemetryReport]) -> dict[str, int]:
        """Ids by serial of the devices these readings come from, registering the unknown
        serials whose announced type allows it."""
        if not readings:
            return {}
        by_serial = tx.find_by_serial({m.hostname for m in readings})
        announced = {
            m.hostname: m.device_type
            for m in readings
            if m.hostname not in by_serial and m.device_type is not None
        }
        if announced:
            types = tx.device_types_named(set(announced.values()))
            new = {
                serial: row.id
                for serial, name in announced.items()
                if (row := types.get(str(name))) is not None and row.auto_register and row.id
            }
            if new:
                logger.info("auto-registering %d device(s): %s", len(new), sorted(new)[:10])
                by_serial.update(tx.register_typed(telemetry_kind.KIND, new))
        return by_serial

    def _silence(self, tx: BatchTx, *, cutoff: datetime, now: datetime, limit: int) -> Walk:
        ids = tx.silent_devices(cutoff, limit)
        views = tx.lock_views(ids)
        devices = {i: _working(v, set()) for i, v in views.items()}
        walk = Walk(devices, {}, {}, {}, self._tracker, types=_types_of(tx, views))
        for device_id in ids:
            walk.went_silent(device_id, now, views[device_id].last_seen)
        return walk

    def _write(self, tx: BatchTx, walk: Walk, plan: Plan) -> list[int]:
        devices = walk._devices
        tx.update_devices({i: d.device_patch for i, d in devices.items() if d.device_patch})
        tx.patch_status({i: d.patch for i, d in devices.items() if d.patch})
        tx.apply_alarm_changes(plan.alarm_changes)
        tx.update_commands(plan.command_updates)
        tx.create_commands(plan.new_commands, _now())
        tx.record_alarm_sequences(plan.sequences)
        tx.insert_dead_letters(plan.dead_letters)
        tx.log_connections(plan.connections)
        tx.patch_robots(plan.robot_patches)
        tx.apply_jobs(plan.jobs)
        states = self._tracker.snapshot(plan.cdc_devices)
        panels = {
            i: s
            for i, s in states.items()
            if isinstance(i, int) and isinstance(s.reference, PanelReading)
        }
        tx.save_cdc_states([cdc_row(i, s) for i, s in panels.items() if isinstance(i, int)])
        tx.save_metric_states(
            [metric_state_row(i, s) for i, s in states.items() if i not in panels]
        )
        counts: dict[tuple[int, datetime], tuple[int, int]] = {}
        for (device_id, hour, kind), n in plan.counts.items():
            received, written = counts.get((device_id, hour), (0, 0))
            counts[(device_id, hour)] = (
                (received + n, written) if kind == "received" else (received, written + n)
            )
        tx.add_heartbeat_counts(counts)
        return tx.enqueue_points(plan.lines)
