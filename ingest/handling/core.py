"""The walk's shared state and the handling every kind has: liveness, connections,
command replies, history times; the items, plan and outcome of a batch."""

from __future__ import annotations

import json
import logging
import operator
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from alerting.book import RuleBook, Subject
from alerting.engine import Observation as Watched
from alerting.rules import Severity
from alerting.values import DEVICE
from ingest.cdc import CdcTracker, Decision, Observation, StateKey
from ingest.commands import CommandTiming, Reply, apply_reply
from ingest.kinds import DeviceKind
from ingest.kinds.panel import PANEL
from ingest.kinds.telemetry import DeviceType
from ingest.messages import (
    CommandReply,
    DeviceMessage,
    LastWill,
    Rejected,
    RejectReason,
)
from stores.influx.points import (
    DeviceTags,
)
from stores.postgres.commands_store import CommandRow, NewCommand
from stores.postgres.ingest_store import (
    AlarmChange,
    ConnectionChange,
    DeadLetter,
    DeviceView,
    JobChange,
)

logger = logging.getLogger("ingest.handling")

PAYLOAD_LOG_BYTES = 48


_ONE_MS = timedelta(milliseconds=1)


def _whole_ms(when: datetime) -> datetime:
    """``when`` without its sub-millisecond part."""
    return when.replace(microsecond=when.microsecond - when.microsecond % 1000)


DEFAULT_TIMING = CommandTiming()


@dataclass(frozen=True, slots=True)
class Item:
    """One received message after decoding: the message, or why it was rejected.

    ``address`` is where its transport received it (MQTT: the topic).
    """

    address: str
    payload: bytes
    received_at: datetime
    message: DeviceMessage | None
    rejection: Rejected | None = None
    redelivered: bool = False  # see Delivery.redelivered


@dataclass(slots=True)
class Identity:
    """Where and who a device is (``devices``); a panel's status message may move it."""

    hostname: str | None
    country: str | None
    zone: int | None
    latitude: float | None
    longitude: float | None

    @classmethod
    def of(cls, view: DeviceView) -> Identity:
        return cls(view.hostname, view.country, view.zone, view.latitude, view.longitude)


@dataclass(slots=True)
class ConnectionState:
    """What every kind's device has in ``device_status``: its connection and lifecycle."""

    is_online: bool
    device_state: str
    last_seen: datetime | None

    @classmethod
    def of(cls, view: DeviceView) -> ConnectionState:
        return cls(view.is_online, view.device_state, view.last_seen)


@dataclass(slots=True)
class PanelState(ConnectionState):
    """An alarm panel's ``device_status`` values that its handlers read as well as write."""

    last_alarm_sequence: int | None
    panic1: bool
    panic2: bool
    box_sw: bool
    siren: bool
    turret: bool
    panic1_count: int
    panic2_count: int
    tamper_count: int
    temperature: float | None
    humidity: float | None
    fan_pwm_duty: int | None
    uptime: int | None
    device_synced: bool
    sync_attempts: int
    last_sync_attempt: datetime | None

    @classmethod
    def of(cls, view: DeviceView) -> PanelState:
        return cls(*_PANEL_COLUMNS(view))


# The view's values in the order PanelState declares its fields.
_PANEL_COLUMNS = operator.attrgetter(*PanelState.__dataclass_fields__)

_HELD: dict[type[ConnectionState], frozenset[str]] = {
    kind: frozenset(kind.__dataclass_fields__) for kind in (ConnectionState, PanelState)
}


@dataclass(slots=True)
class _Device:
    """A device while its messages of the batch are applied: its identity, its typed state
    (a PanelState for panels, the ConnectionState every kind has otherwise) and the column
    patches that carry the changes to ``device_status`` and ``devices``."""

    view: DeviceView
    identity: Identity
    state: ConnectionState
    patch: dict[str, object] = field(default_factory=dict)
    device_patch: dict[str, object] = field(default_factory=dict)
    open_alarms: set[tuple[str, int]] = field(default_factory=set)
    held: frozenset[str] = frozenset()  # the columns ``state`` holds

    @classmethod
    def of(cls, view: DeviceView, open_alarms: set[tuple[str, int]]) -> _Device:
        state = PanelState.of(view) if view.kind == PANEL.name else ConnectionState.of(view)
        held = _HELD[type(state)]
        return cls(view, Identity.of(view), state, open_alarms=open_alarms, held=held)

    @property
    def device_id(self) -> int:
        return self.view.device_id

    @property
    def panel(self) -> PanelState:
        """The state of a panel (TypeError for another kind: a handler got the wrong device)."""
        if not isinstance(self.state, PanelState):
            raise TypeError(f"device {self.device_id} is a {self.view.kind}, not a panel")
        return self.state

    def set(self, column: str, value: object) -> None:
        """Change a ``device_status`` column: in the typed state when it holds it, and in
        the patch written at the end of the batch."""
        if column in self.held:
            setattr(self.state, column, value)
        self.patch[column] = value

    def set_all(self, values: Mapping[str, object]) -> None:
        """``set`` for many columns at once."""
        held = self.held
        state = self.state
        for column, value in values.items():
            if column in held:
                setattr(state, column, value)
        self.patch.update(values)

    def move(self, column: str, value: object) -> None:
        """Change a ``devices`` column of the identity (hostname, country, zone, ...)."""
        if getattr(self.identity, column) != value:
            setattr(self.identity, column, value)
            self.device_patch[column] = value

    def tags(self) -> DeviceTags:
        identity = self.identity
        return DeviceTags(
            device_id=self.device_id,
            hostname=identity.hostname or "",
            zone=identity.zone,
            country=identity.country,
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
    # Every received value, in order, for the rules (not only what the CDC writes).
    observations: list[Watched] = field(default_factory=list)
    # seed 003 state snapshots: (device id, device type, state as JSON, time)
    snapshots: list[tuple[int, str, str, datetime]] = field(default_factory=list)
    # The ids of messages taken, by device: (device id, message id, received at).
    message_ids: list[tuple[int, str, datetime]] = field(default_factory=list)
    # One per item, in order: None when it was taken, else why it became a dead letter.
    verdicts: list[str | None] = field(default_factory=list)
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
    events_opened: int = 0
    # One per item of the batch, in order: None if taken, else its dead letter's reason.
    verdicts: tuple[str | None, ...] = ()


def reject(item: Item, reason: RejectReason, detail: str) -> DeadLetter:
    """A dead letter for ``item``, logged with its address (MQTT: topic) and a short prefix of
    its payload."""
    logger.warning(
        "dead letter %s on %s: %s (payload %d bytes: %s)",
        reason.value,
        item.address[:120],
        detail[:200],
        len(item.payload),
        item.payload[:PAYLOAD_LOG_BYTES].hex(),
    )
    return DeadLetter(
        topic=item.address,
        payload=item.payload,
        reason=reason.value,
        detail=detail,
        received_at=item.received_at,
        redelivered=item.redelivered,
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _hour(when: datetime) -> datetime:
    return when.replace(minute=0, second=0, microsecond=0)


def _value(reading: Observation | None, name: str) -> bool | int | float | str | None:
    return None if reading is None else reading.value(name)


class WalkCore:
    """A batch's devices and what applying its messages produces (``plan``); the handling
    all kinds share. Each kind's handlers are a mixin of their own (``handling.panel``,
    ``handling.telemetry``, ``handling.robot``), combined in ``handling.walk.Walk``."""

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
        watched: Mapping[str, frozenset[str]] | None = None,
        taken: tuple[dict[str, int], set[tuple[int, str]]] | None = None,
    ) -> None:
        self._devices = devices
        # For messages with ids: device ids by hostname, and the (device, id) pairs taken.
        self._id_hosts, self._taken = taken or ({}, set())
        self._robots = robots or {}
        self._by_serial = serials or {}
        self._types = types or {}
        # The values some rule watches, by kind: only those become observations.
        self._watched = watched or {}
        self.book: RuleBook | None = None  # the rules the batch is evaluated against
        self._watched_cache: dict[tuple[str, frozenset[str]], tuple[str, ...]] = {}
        self._by_mac = ids_by_mac
        self._by_hostname = ids_by_hostname
        self._digests = digests
        self._tracker = tracker
        self._commands = commands or {}
        self._syncing = syncing or set()
        self._timing = timing
        self.plan = Plan()

    def _known_host(self, hostname: str) -> _Device:
        device_id = self._by_hostname.get(hostname)
        if device_id is None:
            raise Rejected(RejectReason.UNREGISTERED, f"no device with hostname {hostname}")
        return self._devices[device_id]

    def _seen(self, dev: _Device, when: datetime, via: str) -> None:
        """Any message proves the device is alive; coming back from offline is logged."""
        dev.set("last_seen", when)
        if not dev.state.is_online:
            dev.set("is_online", True)
            if dev.state.device_state == "OFFLINE":
                dev.set("device_state", "UNKNOWN")
            self.plan.connections.append(
                ConnectionChange(dev.device_id, "connected", when, json.dumps({"via": via}))
            )
            self._observe(dev, DEVICE, when, {"online": True})
            if via not in ("heartbeat", "telemetry"):  # their reading carries is_online=True
                self._connection_point(dev, when, online=True)

    def _watched_of(self, kind: str, available: frozenset[str]) -> tuple[str, ...]:
        """Of the values ``available`` from a source, those some rule on ``kind`` watches."""
        key = (kind, available)
        names = self._watched_cache.get(key)
        if names is None:
            names = tuple(sorted(self._watched.get(kind, frozenset()) & available))
            self._watched_cache[key] = names
        return names

    def _observe(
        self,
        dev: _Device,
        kind: str,
        at: datetime,
        values: Mapping[str, object],
        *,
        source: str = "",
        hints: Mapping[str, Severity] | None = None,
        context: Mapping[str, object] | None = None,
    ) -> None:
        """Hand the numbers and flags of ``values`` (received at ``at``) that some rule
        watches to the rules."""
        watched = self._watched.get(kind)
        if not watched:
            return
        numbers = {
            name: value
            for name in watched & values.keys()
            if isinstance(value := values[name], int | float)
        }
        if not numbers:
            return
        identity = dev.identity
        device_type = self._types.get(dev.device_id)
        subject = Subject(
            dev.device_id,
            hostname=identity.hostname,
            zone=identity.zone,
            country=identity.country,
            device_kind=dev.view.kind,
            device_type=device_type.name if device_type is not None else None,
            source=source,
        )
        self.plan.observations.append(
            Watched(kind, subject, at, numbers, hints or {}, context or {})
        )

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
        earliest = _whole_ms(state.written_at) + _ONE_MS
        return earliest if when < earliest else when

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
        self._observe(dev, DEVICE, now, {"online": False}, context={"via": "timeout"})
        self._connection_point(dev, now, online=False)
        self._went_offline(dev)

    def _last_will(self, dev: _Device, msg: LastWill) -> None:
        if not dev.state.is_online:
            return
        dev.set("is_online", False)
        dev.set("device_state", "OFFLINE")
        event = "timeout" if msg.timed_out else "disconnected"
        self.plan.connections.append(
            ConnectionChange(dev.device_id, event, msg.received_at, json.dumps({"via": msg.via}))
        )
        self._observe(dev, DEVICE, msg.received_at, {"online": False}, context={"via": msg.via})
        self._connection_point(dev, msg.received_at, online=False)
        self._went_offline(dev)

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

    def _went_offline(self, dev: _Device) -> None:
        """A kind's own bookkeeping when one of its devices goes offline (none by default)."""

    def _kind(self, dev: _Device) -> DeviceKind:
        """The declaration the device's readings are judged by."""
        raise NotImplementedError

    def _history_line(self, dev: _Device, reading: Observation, decision: Decision) -> str:
        """The point of a CDC write, in its kind's measurement."""
        raise NotImplementedError
