"""A simulated fleet of alarm panels and the mixed message stream it publishes.

Modelled on ``tests/support/devices.py`` but independent of it (benchmarks do not import
tests). The whole stream is built and serialised before anything is published, so the
publisher only moves bytes. Its shape:

1. one ``StatusMessage`` per device (this registers the device);
2. rounds in which every device, in a fresh random order, sends one message: mostly a
   ``Heartbeat`` whose temperature and humidity follow small mean-reverting random walks
   (so the CDC dead band filters most of them), sometimes an ``AlarmEvent`` (PANIC1,
   ACTIVE then INACTIVE, ``sequence`` increasing per device) or a ``StatusMessage``.

Each device's clock (the ``timestamp`` field) and ``uptime`` increase with every message it
sends. The stream carries two hooks for measurement, both in fields ingest stores as given:

* ``StatusMessage.state_duration`` is the device's running count of status messages, so
  ``sum(device_status.state_duration)`` counts the status messages committed;
* ``uptime`` is strictly increasing per device, so ``device_status.uptime`` tells how far a
  device's messages have been committed (the latency probes rely on it).

Devices report the ``device_db_id`` they will be given, as panels of a fleet in service do
(none is waiting for a SET_DEVICE_ID): in a fresh database the ids are handed out in the
order the first status messages arrive, which is publishing order. ``device_status.
device_synced`` tells afterwards whether that held.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass

from ingest.contract import TopicKind, TopicScheme, pb
from simulator.schedule import Agenda
from simulator.telemetry import TelemetryDevice, shipped_types

FIRMWARE = "2.1.0"
LONGEST_SPAN_MS = 3_600_000  # device clocks cover at most an hour: well inside the skew limit
HEARTBEAT_INTERVAL_MS = 5_000
FAN_DUTY = 30


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamShape:
    """How many devices and messages, and the mix of message kinds."""

    devices: int
    messages: int
    alarm_share: float = 0.005
    status_share: float = 0.005
    probe_devices: int = 50
    seed: int = 1
    # Of the devices, this share are telemetry devices of the simulator's device types:
    # JSON readings instead of heartbeats, alarms and statuses (their first registers them).
    telemetry_share: float = 0.0

    def __post_init__(self) -> None:
        if self.devices < 1:
            raise ValueError("devices must be at least 1")
        if self.messages < self.devices:
            raise ValueError(
                f"messages ({self.messages}) must be at least devices ({self.devices}): "
                "every device starts with a status message"
            )
        if min(self.alarm_share, self.status_share) < 0 or (
            self.alarm_share + self.status_share >= 1
        ):
            raise ValueError("alarm_share and status_share must be >= 0 and sum to less than 1")
        if self.probe_devices < 0:
            raise ValueError("probe_devices must be >= 0")
        if not 0 <= self.telemetry_share <= 1:
            raise ValueError("telemetry_share must be within [0, 1]")

    @property
    def telemetry_devices(self) -> int:
        """How many of the devices are telemetry devices."""
        return round(self.devices * self.telemetry_share)


@dataclass(frozen=True, slots=True)
class Probe:
    """A heartbeat whose commit the latency probe watches for: its device and uptime."""

    hostname: str
    uptime: int


@dataclass(frozen=True, slots=True)
class Outbound:
    """One serialised message ready to publish."""

    topic: str
    payload: bytes
    kind: TopicKind
    probe: Probe | None = None


@dataclass(frozen=True, slots=True)
class Stream:
    """The messages in publishing order, with their count per kind."""

    messages: list[Outbound]
    counts: Counter[TopicKind]
    probe_hostnames: tuple[str, ...]
    # (hostname, MAC) of each panel in the order of their first status messages: a fresh
    # database that registers them in this order gives them the ids they report.
    registrations: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class _Panel:
    """One simulated panel's identity and evolving state."""

    number: int
    hostname: str
    mac: str
    clock_ms: int
    uptime: int
    base_temperature: float
    base_humidity: float
    topics: dict[TopicKind, str]
    temperature: float = 0.0
    humidity: float = 0.0
    statuses: int = 0
    alarm_sequence: int = 0
    panic: bool = False
    panic_count: int = 0
    probe: bool = False
    device_id: int = 0

    def __post_init__(self) -> None:
        self.temperature = self.base_temperature
        self.humidity = self.base_humidity


class _Fleet:
    """Builds the messages of every panel, advancing their clocks and sensors."""

    def __init__(self, shape: StreamShape, scheme: TopicScheme, now_ms: int) -> None:
        self._shape = shape
        self._rng = random.Random(shape.seed)  # noqa: S311 - a simulation, not secrets
        per_device = math.ceil(shape.messages / shape.devices)
        self._step_ms = max(1, min(HEARTBEAT_INTERVAL_MS, LONGEST_SPAN_MS // per_device))
        self._step_s = max(1, self._step_ms // 1000)
        start_ms = now_ms - per_device * self._step_ms - HEARTBEAT_INTERVAL_MS
        rng = self._rng
        self.panels = []
        for number in range(1, shape.devices + 1):
            hostname = f"ESG_ALARM_{number:05d}"
            self.panels.append(
                _Panel(
                    number=number,
                    hostname=hostname,
                    mac="AA:BB:CC:{:02X}:{:02X}:{:02X}".format(*number.to_bytes(3, "big")),
                    clock_ms=start_ms + rng.randrange(HEARTBEAT_INTERVAL_MS),
                    uptime=rng.randrange(60, 86_400),
                    base_temperature=round(rng.uniform(18.0, 26.0), 1),
                    base_humidity=round(rng.uniform(35.0, 55.0), 1),
                    topics={kind: scheme.topic(hostname, kind) for kind in TopicKind},
                )
            )
        sensors = shape.telemetry_devices
        self.panels = self.panels[: shape.devices - sensors]
        for panel in rng.sample(self.panels, min(shape.probe_devices, len(self.panels))):
            panel.probe = True
        types = shipped_types()
        self.sensors = [
            TelemetryDevice(
                types[n % len(types)],
                n + 1,
                seed=shape.seed,
                scheme=scheme,
                interval_ms=self._step_ms,
                agenda=Agenda(),  # the stream drives them, not an agenda
                out=[],
                start_ms=start_ms,
            )
            for n in range(sensors)
        ]
        self._sensor_clock = dict.fromkeys(range(sensors), start_ms)

    def reading(self, index: int) -> Outbound:
        """The next JSON reading of sensor ``index`` (its device clock one step on)."""
        sensor = self.sensors[index]
        self._sensor_clock[index] += self._step_ms
        payload = sensor.payload(self._sensor_clock[index])
        return Outbound(sensor.topic, payload, TopicKind.TELEMETRY)

    def registration_order(self) -> list[_Panel]:
        """The panels in the order their first status is sent; renumbered to match the ids
        a fresh database gives them (1, 2, ... in order of arrival)."""
        order = self.shuffled()
        for device_id, panel in enumerate(order, start=1):
            panel.device_id = device_id
        return order

    def _tick(self, panel: _Panel) -> None:
        panel.clock_ms += self._step_ms
        panel.uptime += self._step_s

    def status(self, panel: _Panel) -> Outbound:
        """The panel's full picture; ``state_duration`` counts its status messages."""
        self._tick(panel)
        panel.statuses += 1
        message = pb.StatusMessage(
            mac_address=panel.mac,
            device_db_id=panel.device_id,
            hostname=panel.hostname,
            firmware=FIRMWARE,
            partition=1,
            ota_validated=True,
            uptime=panel.uptime,
            boot_count=3,
            state=pb.StatusMessage.NORMAL,
            state_duration=panel.statuses,
            free_heap=120_000,
            min_heap=90_000,
            network=pb.StatusMessage.NETWORK_WIFI,
            ip_address="10.{}.{}.{}".format(*panel.number.to_bytes(3, "big")),
            rssi=-61,
            connected=True,
            has_ip=True,
            mqtt_connected=True,
            ntp_synced=True,
            panic1=panel.panic,
            panic1_count=panel.panic_count,
            temperature=panel.temperature,
            humidity=panel.humidity,
            country="ES",
            zone=panel.number % 16,
            latitude=40.4168,
            longitude=-3.7038,
            timestamp=panel.clock_ms,
        )
        return Outbound(
            panel.topics[TopicKind.STATUS], message.SerializeToString(), TopicKind.STATUS
        )

    def heartbeat(self, panel: _Panel) -> Outbound:
        """Sensors after one more step of their random walks."""
        self._tick(panel)
        rng = self._rng
        panel.temperature += 0.02 * (panel.base_temperature - panel.temperature) + rng.gauss(
            0.0, 0.04
        )
        panel.humidity += 0.02 * (panel.base_humidity - panel.humidity) + rng.gauss(0.0, 0.15)
        message = pb.Heartbeat(
            mac_address=panel.mac,
            device_db_id=panel.device_id,
            firmware=FIRMWARE,
            uptime=panel.uptime,
            panic1=panel.panic,
            temperature=panel.temperature,
            humidity=panel.humidity,
            fan_pwm_duty=FAN_DUTY,
            eth_interface=0,
            timestamp=panel.clock_ms,
        )
        probe = Probe(panel.hostname, panel.uptime) if panel.probe else None
        return Outbound(
            panel.topics[TopicKind.HEARTBEAT],
            message.SerializeToString(),
            TopicKind.HEARTBEAT,
            probe,
        )

    def alarm(self, panel: _Panel) -> Outbound:
        """PANIC1 pressed (ACTIVE) or released (INACTIVE), alternately."""
        self._tick(panel)
        panel.alarm_sequence += 1
        panel.panic = not panel.panic
        if panel.panic:
            panel.panic_count += 1
        state = pb.AlarmEvent.ACTIVE if panel.panic else pb.AlarmEvent.INACTIVE
        message = pb.AlarmEvent(
            mac_address=panel.mac,
            device_db_id=panel.device_id,
            sequence=panel.alarm_sequence,
            timestamp=panel.clock_ms,
            type=pb.AlarmEvent.PANIC1,
            state=state,
            priority=pb.AlarmEvent.CRITICAL,
            physical_state=panel.panic,
        )
        return Outbound(panel.topics[TopicKind.ALARM], message.SerializeToString(), TopicKind.ALARM)

    def next_message(self, panel: _Panel) -> Outbound:
        """A heartbeat, or now and then an alarm or status message."""
        draw = self._rng.random()
        if draw < self._shape.alarm_share:
            return self.alarm(panel)
        if draw < self._shape.alarm_share + self._shape.status_share:
            return self.status(panel)
        return self.heartbeat(panel)

    @property
    def rng(self) -> random.Random:
        """The stream's random source."""
        return self._rng

    def shuffled(self) -> list[_Panel]:
        """The panels in a fresh random order (devices are not synchronised)."""
        return self._rng.sample(self.panels, len(self.panels))


def build_stream(shape: StreamShape, scheme: TopicScheme, now_ms: int) -> Stream:
    """Every message of the run, serialised, in publishing order."""
    fleet = _Fleet(shape, scheme, now_ms)
    order = fleet.registration_order()
    messages = [fleet.status(panel) for panel in order]
    messages += [fleet.reading(index) for index in range(len(fleet.sensors))]
    devices: list[_Panel | int] = [*fleet.panels, *range(len(fleet.sensors))]
    while len(messages) < shape.messages:
        for device in fleet.rng.sample(devices, len(devices)):
            if len(messages) >= shape.messages:
                break
            messages.append(
                fleet.reading(device) if isinstance(device, int) else fleet.next_message(device)
            )
    counts = Counter(message.kind for message in messages)
    probes = tuple(sorted(panel.hostname for panel in fleet.panels if panel.probe))
    return Stream(
        messages=messages,
        counts=counts,
        probe_hostnames=probes,
        registrations=tuple((panel.hostname, panel.mac) for panel in order),
    )
