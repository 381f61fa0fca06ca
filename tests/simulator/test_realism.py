"""A simulated day of 50 panels: plausible sensors, consistent I/O, a valid contract."""

from __future__ import annotations

import itertools
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from ingest.contract import TopicScheme, pb
from ingest.decoding import Decoder
from simulator import Emission, Fleet, FleetOptions
from tests.simulator.conftest import DAY_MS, START_MS, kind_of

INTERVAL_S = 30  # fewer heartbeats than the default 10 s keep the day quick to check
OPTIONS = FleetOptions(devices=50, seed=2024, heartbeat_interval_s=INTERVAL_S)
SYNC_AT_MS = START_MS + 120_000  # every panel is connected by then
FIRST_ID = 1000
Alarm = pb.AlarmEvent


@dataclass(frozen=True)
class Day:
    """A simulated day, with SET_DEVICE_ID sent to every panel after two minutes."""

    emissions: list[Emission]
    assigned: dict[str, int]
    out_of_sync: frozenset[str]

    def of(self, kind: str) -> dict[str, list[tuple[int, bytes]]]:
        """(time, payload) of one kind of message, per hostname, in order."""
        found: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
        for emission in self.emissions:
            hostname, this = kind_of(emission)
            if this == kind:
                found[hostname].append((emission.at_ms, emission.payload))
        return found

    def heartbeats(self) -> dict[str, list[tuple[int, pb.Heartbeat]]]:
        """Decoded heartbeats per hostname."""
        return {
            host: [(at, pb.Heartbeat.FromString(raw)) for at, raw in items]
            for host, items in self.of("heartbeat").items()
        }


@pytest.fixture(scope="module")
def day() -> Day:
    """One simulated day of OPTIONS (generated once for the module)."""
    fleet = Fleet(OPTIONS, TopicScheme("fleet"), START_MS)
    emissions = list(fleet.stream(SYNC_AT_MS))
    assigned = {}
    for number, topic in enumerate(fleet.command_topics()):
        hostname = topic.split("/")[1]
        assigned[hostname] = FIRST_ID + number
        envelope = pb.CommandEnvelope(
            request_id=str(uuid.UUID(int=number + 1)),
            sequence=1,
            timestamp=SYNC_AT_MS,
            type=pb.CommandEnvelope.SYSTEM,
            auth_level=2,
            set_device_id=pb.SetDeviceId(device_db_id=FIRST_ID + number),
        )
        fleet.deliver_command(topic, envelope.SerializeToString(), SYNC_AT_MS)
    emissions += fleet.stream(START_MS + DAY_MS)
    return Day(emissions, assigned, fleet.out_of_sync)


def test_every_message_decodes(day: Day) -> None:
    """The ingest decoder accepts every message of the day without a rejection."""
    decoder = Decoder(TopicScheme("fleet"))
    kinds = Counter(kind_of(e)[1] for e in day.emissions)
    for emission in day.emissions:
        decoder.decode(
            emission.topic, emission.payload, datetime.fromtimestamp(emission.at_ms / 1000, UTC)
        )
    assert set(kinds) == {"status", "heartbeat", "alarm", "lwt", "response"}
    assert kinds["heartbeat"] > 50 * (86_400 // INTERVAL_S) * 0.95


def test_sensors_stay_plausible(day: Day) -> None:
    """Temperature, humidity and fan stay in range, vary through the day and agree."""
    fan_on = 0
    for host, beats in day.heartbeats().items():
        temperatures = [hb.temperature for _, hb in beats]
        assert all(-40 <= t <= 125 for t in temperatures), host
        assert 1.0 <= max(temperatures) - min(temperatures) <= 25.0, host
        assert all(0 <= hb.humidity <= 100 for _, hb in beats), host
        assert all(0 <= hb.fan_pwm_duty <= 100 for _, hb in beats), host
        # The fan follows temperature: every reading with the fan on is warmer than any off.
        off = [hb.temperature for _, hb in beats if hb.fan_pwm_duty == 0]
        on = [hb.temperature for _, hb in beats if hb.fan_pwm_duty > 0]
        if off and on:
            assert max(off) <= min(on) + 0.01, host
        fan_on += bool(on)
    assert fan_on >= 3  # warm sites run their fans


def test_temperature_follows_the_daily_cycle(day: Day) -> None:
    """Most panels are warmer in their local afternoon than before dawn."""
    longitude = {
        host: pb.StatusMessage.FromString(items[0][1]).longitude
        for host, items in day.of("status").items()
    }
    warmer = 0
    for host, beats in day.heartbeats().items():
        by_hour: dict[str, list[float]] = defaultdict(list)
        for at, hb in beats:
            hour = (at / 3_600_000 + longitude[host] / 15) % 24
            if 13 <= hour < 17:
                by_hour["afternoon"].append(hb.temperature)
            elif 2 <= hour < 6:
                by_hour["night"].append(hb.temperature)
        mean = {k: sum(v) / len(v) for k, v in by_hour.items()}
        warmer += mean["afternoon"] > mean["night"]
    assert warmer >= 45


def test_heartbeats_keep_their_interval(day: Day) -> None:
    """Consecutive heartbeats are one interval apart, longer only around an outage."""
    gaps = [
        b[0] - a[0] for beats in day.of("heartbeat").values() for a, b in itertools.pairwise(beats)
    ]
    assert min(gaps) == INTERVAL_S * 1000
    assert Counter(gaps)[INTERVAL_S * 1000] / len(gaps) > 0.99


def test_alarm_sequences_increase_per_device(day: Day) -> None:
    """Each panel's alarm sequence strictly increases; states follow their life cycle."""
    following: dict[int, set[int]] = {
        Alarm.STARTING: {Alarm.ACTIVE, Alarm.STOPPING},
        Alarm.ACTIVE: {Alarm.STOPPING},
        Alarm.STOPPING: {Alarm.INACTIVE},
        Alarm.INACTIVE: {Alarm.STARTING},
    }
    seen = Counter[str]()
    for host, items in day.of("alarm").items():
        events = [Alarm.FromString(raw) for _, raw in items]
        sequences = [e.sequence for e in events]
        assert all(a < b for a, b in itertools.pairwise(sequences)), host
        last: dict[tuple[int, int], int] = {}
        for event in events:
            seen[Alarm.AlarmType.Name(event.type)] += 1
            key = (event.type, event.output_type)
            before = last.get(key, Alarm.INACTIVE)
            if event.type == Alarm.OUTPUT_EVENT:
                assert event.output_type in (1, 2), host
                assert event.pattern_type >= 1, host
                assert event.state in following[before], (host, event)
            else:
                assert event.state == (Alarm.ACTIVE if before == Alarm.INACTIVE else Alarm.INACTIVE)
            last[key] = event.state
    assert {"PANIC1", "PANIC2", "TAMPER", "OUTPUT_EVENT"} <= set(seen)


def test_io_fields_agree_with_alarms(day: Day) -> None:
    """Every heartbeat and status shows exactly the inputs and outputs the alarms say are on."""
    names = {Alarm.PANIC1: "panic1", Alarm.PANIC2: "panic2", Alarm.TAMPER: "box_sw"}
    outputs = {1: "siren", 2: "turret"}
    io: dict[str, dict[str, bool]] = defaultdict(
        lambda: dict.fromkeys(("panic1", "panic2", "box_sw", "siren", "turret"), False)
    )
    checked = 0
    for emission in day.emissions:
        host, kind = kind_of(emission)
        if kind == "alarm":
            event = Alarm.FromString(emission.payload)
            if event.type == Alarm.OUTPUT_EVENT:
                io[host][outputs[event.output_type]] = event.state != Alarm.INACTIVE
            else:
                io[host][names[event.type]] = event.state == Alarm.ACTIVE
        elif kind in ("heartbeat", "status"):
            message: pb.Heartbeat | pb.StatusMessage = (
                pb.Heartbeat.FromString(emission.payload)
                if kind == "heartbeat"
                else pb.StatusMessage.FromString(emission.payload)
            )
            shown = {name: getattr(message, name) for name in io[host]}
            assert shown == io[host], (host, emission.at_ms)
            checked += any(shown.values())
    assert checked > 20  # the day had heartbeats during alarms, not only quiet ones


def test_outages_end_with_a_status(day: Day) -> None:
    """After a last will a panel says nothing until a status; a reboot bumps boot_count."""
    after_will: set[str] = set()
    boot_counts: dict[str, int] = {}
    reboots = 0
    for emission in day.emissions:
        host, kind = kind_of(emission)
        if kind == "lwt":
            assert host not in after_will, host
            after_will.add(host)
        elif kind == "status":
            status = pb.StatusMessage.FromString(emission.payload)
            previous = boot_counts.get(host, status.boot_count)
            assert status.boot_count in (previous, previous + 1)
            if status.boot_count == previous + 1:
                assert host in after_will
                assert status.uptime < 60
                reboots += 1
            boot_counts[host] = status.boot_count
            after_will.discard(host)
        else:
            assert host not in after_will, (host, kind)
    assert reboots >= 1
    assert len(day.of("lwt")) >= 5


def test_fleet_mixes_firmware_and_sites(day: Day) -> None:
    """Statuses show several firmware versions, countries and zones."""
    statuses = [
        pb.StatusMessage.FromString(raw) for items in day.of("status").values() for _, raw in items
    ]
    assert len({s.firmware for s in statuses}) >= 3
    assert len({s.country for s in statuses}) >= 3
    assert len({(s.country, s.zone) for s in statuses}) >= 8


def test_out_of_sync_devices_keep_their_old_id(day: Day) -> None:
    """Panels that completed SET_DEVICE_ID report the new id, except the few out-of-sync ones."""
    completed = set()
    for host, items in day.of("response").items():
        for _, raw in items:
            response = pb.CommandResponse.FromString(raw)
            if response.stage == pb.CommandResponse.COMPLETED and response.success:
                completed.add(host)
    assert 1 <= len(day.out_of_sync) <= 5
    assert day.out_of_sync <= completed  # they claim success
    for host, beats in day.heartbeats().items():
        last = beats[-1][1].device_db_id
        if host in day.out_of_sync or host not in completed:
            assert last == 0, host
        else:
            assert last == day.assigned[host], host
    assert len(completed - day.out_of_sync) >= 40
