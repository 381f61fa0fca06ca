"""The alarm panel's handlers: status, heartbeat, alarm events and the device-id sync."""

from __future__ import annotations

import json
import logging
import operator
from datetime import datetime

from alerting.rules import Severity
from alerting.values import ALARM_INPUTS, alarm_metric
from ingest.cdc import CdcState, Decision
from ingest.commands import set_device_id
from ingest.handling.core import WalkCore, _Device, _hour
from ingest.kinds.panel import PANEL, PanelReading
from ingest.messages import (
    AlarmReport,
    HeartbeatReport,
    Rejected,
    RejectReason,
    StatusReport,
)
from stores.influx.points import (
    AlarmPoint,
    DeviceTags,
    HeartbeatPoint,
    alarm_line,
    heartbeat_line,
)
from stores.postgres.commands_store import NewCommand
from stores.postgres.ingest_store import (
    AlarmChange,
    CdcRow,
)

logger = logging.getLogger("ingest.handling")

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


_HEARTBEAT_VALUES = operator.attrgetter(*_HEARTBEAT_COLUMNS)

_INPUT_IO = {"PANIC1": "panic1", "PANIC2": "panic2", "TAMPER": "box_sw"}


_INPUT_COUNTER = {"PANIC1": "panic1_count", "PANIC2": "panic2_count", "TAMPER": "tamper_count"}


_OUTPUTS = {1: "siren", 2: "turret"}


_RUNNING = frozenset({"ACTIVE", "STARTING", "STOPPING"})


SYNC_ALERT = "device_id_sync_failed"

_METRICS = frozenset(metric.name for metric in PANEL.metrics)  # what a heartbeat reading holds

# A panel alarm's priority as an event's severity.
ALARM_SEVERITY = {
    "CRITICAL": Severity.CRITICAL,
    "HIGH": Severity.CRITICAL,
    "MEDIUM": Severity.WARNING,
    "LOW": Severity.INFO,
}


class PanelHandlers(WalkCore):
    """The messages of alarm panels (protobuf, identified by their MAC)."""

    def _device(self, mac: str) -> _Device:
        return self._devices[self._by_mac[mac]]

    def _known(self, mac: str) -> _Device:
        device_id = self._by_mac.get(mac)
        if device_id is None:
            raise Rejected(RejectReason.UNREGISTERED, f"no device with MAC {mac}")
        return self._devices[device_id]

    def _status(self, dev: _Device, msg: StatusReport) -> None:
        self._seen(dev, msg.received_at, "status")
        statics: dict[str, object] = {"hostname": msg.hostname, "country": msg.country}
        statics["zone"] = msg.zone
        if msg.latitude is not None and msg.longitude is not None:
            statics["latitude"], statics["longitude"] = msg.latitude, msg.longitude
        for column, value in statics.items():
            if value is not None:
                dev.move(column, value)
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
            device_state=dev.state.device_state,
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
        watched = self._watched_of(PANEL.name, _METRICS)
        if watched:
            values = {name: reading.value(name) for name in watched}
            self._observe(dev, PANEL.name, msg.received_at, values)
        columns = dict(zip(_HEARTBEAT_COLUMNS, _HEARTBEAT_VALUES(msg), strict=True))
        columns["last_heartbeat"] = msg.received_at
        if msg.firmware:
            columns["firmware_version"] = msg.firmware
        dev.set_all(columns)
        self._sync(dev, msg.device_db_id, msg.received_at)
        self.plan.counts[(dev.device_id, hour, "received")] += 1
        if decision.write and decision.change_type is not None:
            self.plan.counts[(dev.device_id, hour, "written")] += 1
            point = _history_point(dev, reading, decision, uptime=msg.uptime)
            self.plan.lines.append(heartbeat_line(point))

    def _alarm(self, dev: _Device, msg: AlarmReport) -> None:
        key = (dev.device_id, msg.sequence)
        last = dev.panel.last_alarm_sequence
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
            if msg.alarm_type in ALARM_INPUTS:
                self._observe_alarm(dev, msg, open_=action == "open")
        self.plan.lines.append(alarm_line(_alarm_point(dev.tags(), msg)))

    def _observe_alarm(self, dev: _Device, msg: AlarmReport, *, open_: bool) -> None:
        """An input alarm opening (1) or resolving (0), at the alarm's own priority."""
        name = alarm_metric(msg.alarm_type)
        self._observe(
            dev,
            PANEL.name,
            msg.received_at,
            {name: open_},
            hints={name: ALARM_SEVERITY[msg.priority]},
            context={"alarm_type": msg.alarm_type, "priority": msg.priority,
                     "sequence": msg.sequence},
        )  # fmt: skip

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
                    dev.set(counter, int(getattr(dev.panel, counter) or 0) + 1)
        elif action == "resolve":
            dev.open_alarms.discard(kind)
        dev.set("alarm_active", any(t != "OUTPUT_EVENT" for t, _ in dev.open_alarms))
        return action

    def _sync(self, dev: _Device, reported: int, now: datetime) -> None:
        """Track whether the device knows its id; queue SET_DEVICE_ID (with backoff) if not."""
        if reported == dev.device_id:
            if not dev.panel.device_synced:
                dev.set("device_synced", True)
                attempts = dev.panel.sync_attempts or 0
                if attempts:
                    dev.set("sync_attempts", 0)
                if attempts >= self._timing.sync_alert_after:  # only then can an alert be open
                    self.plan.alarm_changes.append(_sync_alert(dev.device_id, "resolve", now, 0))
                    self._observe(dev, PANEL.name, now, {"sync_failed": False})
            return
        dev.set("device_synced", False)
        if dev.device_id in self._syncing:
            return  # one SET_DEVICE_ID at a time; its own retries cover delivery
        attempts = dev.panel.sync_attempts or 0
        last = dev.panel.last_sync_attempt
        if isinstance(last, datetime) and now - last < self._timing.sync_backoff(attempts - 1):
            return
        if attempts >= self._timing.sync_alert_after:
            self.plan.alarm_changes.append(_sync_alert(dev.device_id, "open", now, attempts))
            self._observe(
                dev, PANEL.name, now, {"sync_failed": True}, context={"attempts": attempts}
            )
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
