"""The walk: a batch's messages applied in order, each by its kind's handlers."""

from __future__ import annotations

from ingest.cdc import Decision, MetricReading, Observation
from ingest.handling.core import Item, _Device, reject
from ingest.handling.panel import PanelHandlers, _history_point
from ingest.handling.robot import RobotHandlers
from ingest.handling.telemetry import TelemetryHandlers
from ingest.kinds import DeviceKind
from ingest.kinds.panel import PANEL, PanelReading
from ingest.messages import (
    AlarmReport,
    CommandReply,
    DeviceMessage,
    HeartbeatReport,
    JobReport,
    LastWill,
    Rejected,
    RobotReport,
    StateSnapshot,
    StatusReport,
    TelemetryReport,
)
from stores.influx.points import (
    heartbeat_line,
)


class Walk(PanelHandlers, TelemetryHandlers, RobotHandlers):
    """Applies a batch's messages in order to in-memory device states, building a Plan."""

    def apply(self, item: Item) -> None:
        """Apply one item; a message that cannot be used becomes a dead letter. Its verdict
        (None: taken) is added to the plan's, in the batch's order."""
        if item.rejection is not None:
            rejection = item.rejection
            self.plan.dead_letters.append(reject(item, rejection.reason, rejection.detail))
            self.plan.verdicts.append(f"{rejection.reason.value}: {rejection.detail}"[:300])
            return
        message = item.message
        if message is None:
            self.plan.ignored += 1  # fleetwatch's own command, seen on the wildcard
            self.plan.verdicts.append(None)
            return
        key = self._message_key(message)
        if key is not None and key in self._taken:
            self.plan.duplicates += 1  # resent after its acknowledgement was lost
            self.plan.verdicts.append(None)
            return
        verdict = self._dispatch(item, message)
        if key is not None:
            self._taken.add(key)
            self.plan.message_ids.append((*key, message.received_at))
        self.plan.verdicts.append(verdict)

    def _message_key(self, message: DeviceMessage) -> tuple[int, str] | None:
        """(device id, message id) of a message that carries an id from a known device."""
        if message.message_id is None:
            return None
        device_id = self._id_hosts.get(message.hostname)
        return None if device_id is None else (device_id, message.message_id)

    def _dispatch(self, item: Item, message: DeviceMessage) -> str | None:
        """Hand a message to its kind's handler; the reason it was rejected, or None."""
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
                case StateSnapshot():
                    self._snapshot(self._known_serial(message.hostname), message)
                case RobotReport():
                    self._robot(self._known_robot(message.hostname), message)
                case JobReport():
                    self._job(self._known_robot(message.hostname), message)
                case _:
                    raise TypeError(f"unexpected message {type(message).__name__}")
        except Rejected as exc:
            self.plan.dead_letters.append(reject(item, exc.reason, exc.detail))
            return f"{exc.reason.value}: {exc.detail}"[:300]
        self.plan.accepted += 1
        return None

    def _kind(self, dev: _Device) -> DeviceKind:
        """The declaration the device's readings are judged by."""
        device_type = self._types.get(dev.device_id)
        return device_type.kind if device_type is not None else self._tracker.kind(PANEL.name)

    def _history_line(self, dev: _Device, reading: Observation, decision: Decision) -> str:
        """The point of a CDC write, in its kind's measurement."""
        if isinstance(reading, PanelReading):
            return heartbeat_line(_history_point(dev, reading, decision))
        if not isinstance(reading, MetricReading):
            raise TypeError(f"no history line for {type(reading).__name__}")
        return self._telemetry_line(dev, reading, decision)
