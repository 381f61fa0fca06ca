"""One simulated alarm panel: its state machine and the messages it publishes.

A panel lives on the fleet's agenda. Periodic work (heartbeat, status) reschedules itself;
incidents (panic presses, tamper, output patterns, reboots, network drops) arrive at random
with the rates of ``Behaviour`` and schedule their own follow-ups. Every message reflects the
panel's state at that instant, so heartbeats, statuses and alarm events always agree on the
inputs and outputs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

from ingest.contract import TopicKind, TopicScheme, pb
from simulator.options import FleetOptions
from simulator.profiles import Profile
from simulator.schedule import Agenda, Emission
from simulator.sensors import Sensors

MS_PER_DAY = 86_400_000
# Alarm sequences are kept in flash and survive reboots. A restarted simulator has no flash,
# so each run starts its sequences at the deciseconds elapsed since 2024-01-01: a later run
# continues above an earlier one (as long as a panel sent fewer than ten events a second),
# and the backend's replay protection sees what a real fleet would show it.
_SEQUENCE_EPOCH_MS = 1_704_067_200_000
LWT_PAYLOAD = b"offline"

Alarm = pb.AlarmEvent
State = pb.StatusMessage

PANIC_HOLD_S = (3.0, 120.0)  # a panic stays active until the button is released/reset
TAMPER_OPEN_S = (30.0, 1200.0)  # the box stays open for a maintenance visit
OUTPUT_TEST_S = (5, 30)  # a scheduled siren/turret self-test
OUTPUT_ALARM_S = (60, 300)  # the siren a panic press sets off
OUTPUT_RAMP_MS = 1000  # STARTING -> ACTIVE and STOPPING -> INACTIVE take a second
REBOOT_DOWN_S = (15.0, 45.0)  # from crash to the first status after boot
DROP_SILENCE_S = (30.0, 900.0)  # a network drop lasts this long (log-uniform)
SIREN, TURRET = 1, 2
PATTERNS = (1, 2, 3, 4)  # constant, pulse, warble, chirp


class Topics(NamedTuple):
    """One panel's topics, built once."""

    status: str
    heartbeat: str
    alarm: str
    response: str
    lwt: str
    command: str

    @classmethod
    def of(cls, scheme: TopicScheme, hostname: str) -> Topics:
        """The topics of ``hostname`` under ``scheme``."""
        kinds = (
            TopicKind.STATUS,
            TopicKind.HEARTBEAT,
            TopicKind.ALARM,
            TopicKind.RESPONSE,
            TopicKind.LWT,
            TopicKind.COMMAND,
        )
        return cls(*(scheme.topic(hostname, kind) for kind in kinds))


@dataclass(slots=True)
class OutputRun:
    """A siren or turret pattern in progress."""

    run: int  # distinguishes this run from an earlier one of the same output
    pattern: int
    duration_s: int  # 0: until switched off
    started_ms: int


class Panel:
    """One alarm panel: identity, live state, and the actions the agenda runs for it."""

    def __init__(
        self,
        profile: Profile,
        options: FleetOptions,
        *,
        topics: Topics,
        agenda: Agenda,
        out: list[Emission],
        start_ms: int,
    ) -> None:
        self.profile = profile
        self.topics = topics
        self.behaviour = options.behaviour
        self._agenda = agenda
        self._out = out
        self._heartbeat_ms = options.heartbeat_interval_ms
        self._status_ms = options.status_interval_ms
        seed, index = options.seed, profile.index
        self.rng = random.Random(f"{seed}:{index}:life")  # noqa: S311 - a simulation
        self.sensors = Sensors(profile, random.Random(f"{seed}:{index}:sensors"), start_ms)  # noqa: S311
        rng = self.rng
        # What the device keeps in flash.
        self.device_db_id = 0
        self.firmware = profile.firmware
        self.partition = rng.randint(0, 1)
        self.ota_validated = True
        self.boot_count = rng.randint(1, 60)
        self.sequence = max(0, (start_ms - _SEQUENCE_EPOCH_MS) // 100) + rng.randint(0, 99)
        self.counts = {"panic1": 0, "panic2": 0, "tamper": 0, "wifi": 0, "mqtt": 0, "error": 0}
        # What it knows since boot (the fleet starts with panels already running a while).
        self.boot_ms = start_ms - rng.randint(60, 30 * 86_400) * 1000
        self.epoch = 0  # bumped at each reboot: timers of the previous life stop
        self.online = False
        self.inputs = {"panic1": False, "panic2": False, "box_sw": False}
        self.input_since: dict[str, int] = {}
        self.outputs: dict[int, OutputRun] = {}
        self._runs = 0
        self.busy = 0  # commands being carried out
        self.maintenance = False
        self.state = State.NORMAL
        self.state_since_ms = start_ms
        self.min_heap = profile.heap_bytes
        self._heartbeat = pb.Heartbeat(
            mac_address=profile.mac,
            firmware=self.firmware,
            eth_interface=1 if profile.ethernet else 0,
        )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, start_ms: int) -> None:
        """Connect within the first seconds after ``start_ms`` and report from then on.

        Connections are spread over five seconds (or one heartbeat interval, if shorter) and
        first heartbeats over one interval, so a fleet's heartbeats arrive evenly.
        """
        rng, period = self.rng, self._heartbeat_ms
        at_ms = start_ms + rng.randrange(min(5000, period))
        first_heartbeat_ms = rng.randint(min(200, period), period)
        self._agenda.at(at_ms, partial(self._connect, self.epoch, first_heartbeat_ms))
        self._schedule_incident(at_ms)

    def _connect(self, epoch: int, first_heartbeat_ms: int, now: int) -> None:
        if epoch != self.epoch:
            return
        self.online = True
        self._emit_status(now)
        self._agenda.at(now + first_heartbeat_ms, partial(self._heartbeat_tick, epoch))
        self._agenda.at(now + self._status_ms, partial(self._status_tick, epoch))

    def _heartbeat_tick(self, epoch: int, now: int) -> None:
        if epoch != self.epoch:
            return  # a timer of the life before the last reboot
        self._agenda.at(now + self._heartbeat_ms, partial(self._heartbeat_tick, epoch))
        if self.online:
            self._emit_heartbeat(now)

    def _status_tick(self, epoch: int, now: int) -> None:
        if epoch != self.epoch:
            return
        self._agenda.at(now + self._status_ms, partial(self._status_tick, epoch))
        if self.online:
            self.ota_validated = True  # a whole status period up: the new image is good
            self._emit_status(now)

    @property
    def idle(self) -> bool:
        """Online with no alarm, output or command in progress."""
        return (
            self.online
            and not self.outputs
            and not self.busy
            and not self.maintenance
            and not any(self.inputs.values())
        )

    def shut_down(self, now: int, down_ms: int) -> None:
        """Restart: outputs and alarms cleared, connection lost, back with a status later.

        ``esp_restart()`` closes the socket without an MQTT DISCONNECT, so the broker
        publishes the panel's last will at once.
        """
        for output in sorted(self.outputs):
            self.stop_output(now, output, immediately=True)
        for name, active in self.inputs.items():
            if active:
                self._set_input(now, name, active=False)
        if self.online:
            self._lose_connection(now)
        self.busy = 0  # commands in progress die with this life (their timers check epoch)
        self.maintenance = False
        self._update_state(now)
        self.epoch += 1
        self.boot_count += 1
        self.boot_ms = now + down_ms - self.rng.randint(4000, 9000)  # booted before connecting
        self.min_heap = self.profile.heap_bytes
        self._agenda.at(now + down_ms, partial(self._connect, self.epoch, self._heartbeat_ms))

    def _lose_connection(self, now: int) -> None:
        # One simulator connection publishes for every panel, and MQTT allows one will per
        # connection: the broker cannot announce a single panel's loss. The simulator sends
        # the panel's will itself, on the panel's lwt topic, when the panel would lose its
        # connection; the backend sees exactly what the broker would have published.
        self.online = False
        self.counts["mqtt"] += 1
        self._out.append(Emission(now, self.topics.lwt, LWT_PAYLOAD))

    # -- spontaneous incidents -------------------------------------------------------------

    def _schedule_incident(self, now: int) -> None:
        rate = self.behaviour.incidents_per_day
        if rate > 0:
            gap = self.rng.expovariate(rate / MS_PER_DAY)
            self._agenda.at(now + max(1, int(gap)), self._incident)

    def _incident(self, now: int) -> None:
        self._schedule_incident(now)
        if not self.online:
            return  # nothing reaches the backend from a panel that is not connected
        b, rng = self.behaviour, self.rng
        kinds = ("panic", "tamper", "output", "reboot", "drop")
        weights = (
            b.panic_per_day,
            b.tamper_per_day,
            b.output_test_per_day,
            b.reboot_per_day,
            b.network_drop_per_day,
        )
        (kind,) = rng.choices(kinds, weights=weights)
        if kind == "panic":
            self._press_panic(now)
        elif kind == "tamper" and not self.inputs["box_sw"]:
            self._set_input(now, "box_sw", active=True)
            close = partial(self._release, "box_sw", now)
            self._agenda.at(now + _ms(rng, TAMPER_OPEN_S), close)
        elif kind == "output":
            output = SIREN if rng.random() < 0.6 else TURRET
            if output not in self.outputs:
                self.start_output(now, output, rng.choice(PATTERNS), rng.randint(*OUTPUT_TEST_S))
        elif kind == "reboot" and self.idle:
            self.counts["error"] += 1  # a watchdog or brown-out reset
            self.shut_down(now, _ms(rng, REBOOT_DOWN_S))
        elif kind == "drop" and self.idle:
            self._drop(now)

    def _press_panic(self, now: int) -> None:
        rng = self.rng
        name = "panic2" if rng.random() < self.behaviour.panic2_share else "panic1"
        if self.inputs[name]:
            return
        self._set_input(now, name, active=True)
        self._agenda.at(now + _ms(rng, PANIC_HOLD_S), partial(self._release, name, now))
        if rng.random() < self.behaviour.siren_on_panic and SIREN not in self.outputs:
            delay = rng.randint(300, 2000)
            duration = rng.randint(*OUTPUT_ALARM_S)
            self._agenda.at(now + delay, partial(self._alarm_siren, self.epoch, duration))

    def _alarm_siren(self, epoch: int, duration_s: int, now: int) -> None:
        if epoch == self.epoch and self.online and SIREN not in self.outputs:
            self.start_output(now, SIREN, 1, duration_s)

    def _release(self, name: str, pressed_ms: int, now: int) -> None:
        # Only the press that scheduled it: a reboot in between cleared that one already.
        if self.inputs[name] and self.input_since.get(name) == pressed_ms:
            self._set_input(now, name, active=False)

    def _drop(self, now: int) -> None:
        if not self.profile.ethernet:
            self.counts["wifi"] += 1
        self._lose_connection(now)
        low, high = DROP_SILENCE_S
        silence_s = low * (high / low) ** self.rng.random()  # log-uniform: most drops short
        self._agenda.at(now + int(silence_s * 1000), partial(self._reconnect, self.epoch))

    def _reconnect(self, epoch: int, now: int) -> None:
        if epoch == self.epoch and not self.online:
            self.online = True
            self._emit_status(now)

    # -- inputs and outputs ----------------------------------------------------------------

    def _set_input(self, now: int, name: str, *, active: bool) -> None:
        self.inputs[name] = active
        kind, priority = _INPUT_ALARMS[name]
        if active:
            self.input_since[name] = now
            self.counts["tamper" if name == "box_sw" else name] += 1
            self._emit_alarm(now, kind, Alarm.ACTIVE, priority, physical=True)
        else:
            elapsed = (now - self.input_since.pop(name, now)) // 1000
            self._emit_alarm(now, kind, Alarm.INACTIVE, priority, physical=False, elapsed=elapsed)
        self._update_state(now)

    def start_output(self, now: int, output: int, pattern: int, duration_s: int) -> None:
        """Start a siren (1) or turret (2) pattern; one already running is stopped first."""
        if output in self.outputs:
            self.stop_output(now, output, immediately=True)
        self._runs += 1
        run = OutputRun(self._runs, pattern, duration_s, now)
        self.outputs[output] = run
        self._emit_output(now, output, run, Alarm.STARTING)
        self._agenda.at(now + OUTPUT_RAMP_MS, partial(self._output_active, output, run.run))

    def _output_active(self, output: int, run_id: int, now: int) -> None:
        run = self.outputs.get(output)
        if run is None or run.run != run_id:
            return
        self._emit_output(now, output, run, Alarm.ACTIVE)
        if run.duration_s:
            end = run.started_ms + run.duration_s * 1000
            self._agenda.at(max(end, now + 1), partial(self._output_end, output, run_id))

    def _output_end(self, output: int, run_id: int, now: int) -> None:
        run = self.outputs.get(output)
        if run is not None and run.run == run_id:
            self.stop_output(now, output)

    def stop_output(self, now: int, output: int, *, immediately: bool = False) -> None:
        """Ramp an output down (STOPPING, then INACTIVE a second later); no-op if it is off."""
        run = self.outputs.get(output)
        if run is None:
            return
        self._emit_output(now, output, run, Alarm.STOPPING)
        if immediately:
            self._output_off(output, run.run, now)
        else:
            self._agenda.at(now + OUTPUT_RAMP_MS, partial(self._output_off, output, run.run))

    def _output_off(self, output: int, run_id: int, now: int) -> None:
        run = self.outputs.get(output)
        if run is None or run.run != run_id:
            return
        del self.outputs[output]
        self._emit_output(now, output, run, Alarm.INACTIVE)

    def _update_state(self, now: int) -> None:
        if self.maintenance:
            state = State.MAINTENANCE
        elif any(self.inputs.values()):
            state = State.ALARM
        else:
            state = State.NORMAL
        if state != self.state:
            self.state, self.state_since_ms = state, now

    def set_maintenance(self, now: int, *, on: bool) -> None:
        """Enter or leave MAINTENANCE (an OTA download in progress)."""
        self.maintenance = on
        self._update_state(now)

    def adopt_device_id(self, device_db_id: int) -> None:
        """Store the id the backend assigned; every later message carries it."""
        self.device_db_id = device_db_id
        self._heartbeat.device_db_id = device_db_id

    def install_firmware(self, version: str) -> None:
        """Boot the other OTA partition next time, with ``version``, not yet validated."""
        self.firmware = version
        self._heartbeat.firmware = version
        self.partition = 1 - self.partition if self.partition < 2 else 0
        self.ota_validated = False

    # -- messages --------------------------------------------------------------------------

    def _emit_heartbeat(self, now: int) -> None:
        temperature, humidity, fan = self.sensors.read(now)
        inputs, outputs = self.inputs, self.outputs
        hb = self._heartbeat  # one message per panel, refilled: no per-heartbeat allocation
        hb.uptime = (now - self.boot_ms) // 1000
        hb.panic1 = inputs["panic1"]
        hb.panic2 = inputs["panic2"]
        hb.box_sw = inputs["box_sw"]
        hb.siren = SIREN in outputs
        hb.turret = TURRET in outputs
        hb.temperature = temperature
        hb.humidity = humidity
        hb.fan_pwm_duty = fan
        hb.timestamp = now
        self._out.append(Emission(now, self.topics.heartbeat, hb.SerializeToString()))

    def _emit_status(self, now: int) -> None:
        self._out.append(Emission(now, self.topics.status, self.status(now).SerializeToString()))

    def status(self, now: int) -> pb.StatusMessage:
        """The full picture at ``now``, as the panel reports it."""
        p, rng, counts = self.profile, self.rng, self.counts
        temperature, humidity, _ = self.sensors.read(now)
        free_heap = max(40_000, p.heap_bytes + int(rng.gauss(0.0, 4000.0)))
        self.min_heap = min(self.min_heap, free_heap - rng.randint(0, 15_000))
        uptime_ms = now - self.boot_ms
        ntp_ms = self.boot_ms + 5000 + max(0, uptime_ms - 5000) // 3_600_000 * 3_600_000
        return pb.StatusMessage(
            mac_address=p.mac,
            device_db_id=self.device_db_id,
            hostname=p.hostname,
            firmware=self.firmware,
            partition=self.partition,
            ota_validated=self.ota_validated,
            uptime=uptime_ms // 1000,
            boot_count=self.boot_count,
            state=self.state,
            state_duration=max(0, now - self.state_since_ms) // 1000,
            free_heap=free_heap,
            min_heap=self.min_heap,
            network=State.NETWORK_ETHERNET if p.ethernet else State.NETWORK_WIFI,
            ip_address=p.ip_address,
            rssi=0 if p.ethernet else min(-30, p.rssi_dbm + rng.randint(-4, 4)),
            connected=True,
            has_ip=True,
            mqtt_connected=True,
            ntp_synced=True,
            last_ntp_sync=min(ntp_ms, now),
            panic1=self.inputs["panic1"],
            panic2=self.inputs["panic2"],
            box_sw=self.inputs["box_sw"],
            siren=SIREN in self.outputs,
            turret=TURRET in self.outputs,
            panic1_count=counts["panic1"],
            panic2_count=counts["panic2"],
            tamper_count=counts["tamper"],
            wifi_disconnects=counts["wifi"],
            mqtt_disconnects=counts["mqtt"],
            error_count=counts["error"],
            temperature=temperature,
            humidity=humidity,
            error_flags=0,
            country=p.site.country,
            zone=p.zone,
            latitude=p.latitude,
            longitude=p.longitude,
            timestamp=now,
        )

    def emit_status_now(self, now: int) -> None:
        """Publish a status outside the periodic schedule (a diagnostic command asked)."""
        if self.online:
            self._emit_status(now)

    def _emit_alarm(
        self,
        now: int,
        kind: pb.AlarmEvent.AlarmType,
        state: pb.AlarmEvent.EventState,
        priority: pb.AlarmEvent.Priority,
        *,
        physical: bool,
        elapsed: int = 0,
        output: int = 0,
        pattern: int = 0,
        duration: int = 0,
    ) -> None:
        self.sequence += 1
        event = pb.AlarmEvent(
            mac_address=self.profile.mac,
            device_db_id=self.device_db_id,
            sequence=self.sequence,
            timestamp=now,
            type=kind,
            state=state,
            priority=priority,
            physical_state=physical,
            output_type=output,
            pattern_type=pattern,
            duration_seconds=duration,
            elapsed_seconds=elapsed,
        )
        self._out.append(Emission(now, self.topics.alarm, event.SerializeToString()))

    def _emit_output(
        self, now: int, output: int, run: OutputRun, state: pb.AlarmEvent.EventState
    ) -> None:
        self._emit_alarm(
            now,
            Alarm.OUTPUT_EVENT,
            state,
            Alarm.MEDIUM,
            physical=state != Alarm.INACTIVE,
            elapsed=(now - run.started_ms) // 1000,
            output=output,
            pattern=run.pattern,
            duration=run.duration_s,
        )

    def emit(self, emission: Emission) -> None:
        """Publish a message built elsewhere (a command response)."""
        self._out.append(emission)


_INPUT_ALARMS: dict[str, tuple[pb.AlarmEvent.AlarmType, pb.AlarmEvent.Priority]] = {
    "panic1": (Alarm.PANIC1, Alarm.CRITICAL),
    "panic2": (Alarm.PANIC2, Alarm.HIGH),
    "box_sw": (Alarm.TAMPER, Alarm.HIGH),
}


def _ms(rng: random.Random, bounds_s: tuple[float, float]) -> int:
    return int(rng.uniform(*bounds_s) * 1000)
