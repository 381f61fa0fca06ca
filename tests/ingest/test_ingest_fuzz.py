"""Random and mutated input through the running service: it keeps going and loses nothing.

A seeded ``random.Random`` drives the traffic rather than hypothesis: every example needs a
fresh database, bucket and service, which hypothesis cannot give a function-scoped async
fixture. Each seed is one reproducible example of a few hundred messages.

Every message that is not one of the known-valid ones is classified up front with the same
``Decoder`` the service uses: what decoding rejects must come back as a dead letter with that
reason. A mutant can still decode into a valid message; one that would then speak for a
registered panel is not sent (its effect would need a model of the handler), the others go
through and are accounted for only in the totals.
"""

from __future__ import annotations

import math
import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from ingest.contract import TopicKind, TopicScheme, pb
from ingest.decoding import Decoder
from ingest.messages import JobReport, Rejected, RejectReason, RobotReport, TelemetryReport
from ingest.service import IngestService
from tests.support.devices import FakePanel, Publisher, now_ms
from tests.support.robots import job as robot_job
from tests.support.robots import state as robot_state
from tests.support.telemetry import VIBRATION, add_device, declare, reading

PANELS = (FakePanel(1), FakePanel(2), FakePanel(3))
# Template of mutants that may decode cleanly: its MAC is six hex digits away from the panels',
# further than the few byte edits of a mutation reach.
STRANGER = FakePanel(0x5A5A5A)
# Never registered: what it sends is refused as unregistered.
GHOST = FakePanel(0x0F0F0F)
PROTECTED_MACS = frozenset(panel.mac for panel in (*PANELS, GHOST))
# Telemetry devices of the VIBRATION type, registered before the traffic.
SENSORS = ("VIB-F001", "VIB-F002")
PROTECTED_SERIALS = frozenset(SENSORS)
# Robots registered by their first state at the start of the traffic.
ROBOTS = ("tonypi_f1", "tonypi_f2")
MESSAGES_PER_SEED = 300
SEEDS = (1, 2, 3)


@dataclass(slots=True)
class Traffic:
    """The messages of one example, in publish order, and what the service must make of them."""

    scheme: TopicScheme
    decoder: Decoder
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    valid: set[tuple[str, bytes]] = field(default_factory=set)
    rejections: Counter[tuple[str, bytes, str]] = field(default_factory=Counter)
    heartbeats: int = 0
    readings: int = 0  # valid telemetry readings of SENSORS
    robot_parts: int = 0  # part readings in valid states of ROBOTS
    sequences: dict[str, int] = field(default_factory=dict)  # MAC -> last alarm sequence sent

    def topic(self, panel: FakePanel, kind: TopicKind) -> str:
        return self.scheme.topic(panel.hostname, kind)

    def send_valid(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, payload))
        self.valid.add((topic, payload))

    def send_rejected(self, topic: str, payload: bytes, reason: RejectReason) -> None:
        """A message the service must dead-letter with ``reason``."""
        self.messages.append((topic, payload))
        self.rejections[(topic, payload, reason.value)] += 1

    def send_unknown(self, topic: str, payload: bytes) -> None:
        """A random or mutated message: whatever decoding says of it is what is expected."""
        try:
            message = self.decoder.decode(topic, payload, datetime.now(UTC))
        except Rejected as exc:
            self.send_rejected(topic, payload, exc.reason)
            return
        if getattr(message, "mac", None) in PROTECTED_MACS:
            return  # a valid message of a registered panel after all: not fuzz
        if isinstance(message, TelemetryReport) and message.hostname in PROTECTED_SERIALS:
            return  # the same for a registered telemetry device
        if isinstance(message, RobotReport | JobReport) and message.hostname in ROBOTS:
            return  # or robot
        self.messages.append((topic, payload))


Mutation = Callable[[random.Random, bytearray], None]


def _flip(rng: random.Random, data: bytearray) -> None:
    if data:
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)


def _insert(rng: random.Random, data: bytearray) -> None:
    data.insert(rng.randrange(len(data) + 1), rng.randrange(256))


def _delete(rng: random.Random, data: bytearray) -> None:
    if data:
        del data[rng.randrange(len(data))]


MUTATIONS: tuple[Mutation, ...] = (_flip, _insert, _delete)


def mutate(rng: random.Random, payload: bytes) -> bytes:
    """``payload`` with one to three bytes flipped, inserted or deleted."""
    data = bytearray(payload)
    for _ in range(rng.randint(1, 3)):
        rng.choice(MUTATIONS)(rng, data)
    return bytes(data)


def valid_heartbeat(rng: random.Random, traffic: Traffic) -> None:
    panel = rng.choice(PANELS)
    message = panel.heartbeat(
        temperature=round(rng.uniform(15.0, 30.0), 1),
        humidity=round(rng.uniform(20.0, 80.0), 1),
        fan_pwm_duty=rng.randint(0, 100),
        panic1=rng.random() < 0.1,
    )  # each with a new, strictly later device timestamp
    traffic.send_valid(traffic.topic(panel, TopicKind.HEARTBEAT), message.SerializeToString())
    traffic.heartbeats += 1


def valid_alarm(rng: random.Random, traffic: Traffic) -> None:
    panel = rng.choice(PANELS)
    sequence = traffic.sequences.get(panel.mac, 0) + 1
    traffic.sequences[panel.mac] = sequence
    message = panel.alarm(
        sequence,
        type=rng.choice([pb.AlarmEvent.PANIC1, pb.AlarmEvent.PANIC2, pb.AlarmEvent.TAMPER]),
        state=rng.choice([pb.AlarmEvent.ACTIVE, pb.AlarmEvent.INACTIVE]),
    )
    traffic.send_valid(traffic.topic(panel, TopicKind.ALARM), message.SerializeToString())


def mutant(rng: random.Random, traffic: Traffic) -> None:
    panel = rng.choice((*PANELS, STRANGER))
    kind = rng.choice([TopicKind.STATUS, TopicKind.HEARTBEAT, TopicKind.ALARM])
    template = {
        TopicKind.STATUS: panel.status,
        TopicKind.HEARTBEAT: panel.heartbeat,
        TopicKind.ALARM: lambda: panel.alarm(rng.randint(1, 1000)),
    }[kind]()
    payload = mutate(rng, template.SerializeToString())
    traffic.send_unknown(traffic.topic(panel, kind), payload)


def random_bytes(rng: random.Random, traffic: Traffic) -> None:
    size = rng.choice([0, rng.randint(1, 64), rng.randint(64, 600), 5000])
    payload = rng.randbytes(size)
    kind = rng.choice([TopicKind.STATUS, TopicKind.HEARTBEAT, TopicKind.ALARM, TopicKind.RESPONSE])
    traffic.send_unknown(traffic.topic(rng.choice((*PANELS, STRANGER)), kind), payload)


def empty_payload(rng: random.Random, traffic: Traffic) -> None:
    kind = rng.choice([TopicKind.STATUS, TopicKind.HEARTBEAT, TopicKind.ALARM, TopicKind.RESPONSE])
    traffic.send_unknown(traffic.topic(rng.choice(PANELS), kind), b"")


def wrong_topic(rng: random.Random, traffic: Traffic) -> None:
    prefix, host = traffic.scheme.prefix, rng.choice(PANELS).hostname
    topic = rng.choice(
        [
            f"{prefix}/{host}/nope",
            f"{prefix}/a/b/c",
            f"{prefix}/{host}",
            f"{prefix}/{host}/heartbeat/extra",
            f"{prefix}//heartbeat",
            f"{prefix}/",
            prefix,
            f"{prefix}/h\u00e9llo/heartbeat",
            f"{prefix}/a b/status",
            f"{prefix}/{'h' * 300}/status",
        ]
    )
    payload = rng.choice([b"", rng.randbytes(16), PANELS[0].heartbeat().SerializeToString()])
    traffic.send_rejected(topic, payload, RejectReason.BAD_TOPIC)


def _crafted(panel: FakePanel, rng: random.Random) -> list[tuple[TopicKind, object, RejectReason]]:
    """Messages with one bad field each, and the reason each must be refused with."""
    huge = "x" * 5000
    out_of_range, too_large = RejectReason.OUT_OF_RANGE, RejectReason.TOO_LARGE
    hb, st, al = TopicKind.HEARTBEAT, TopicKind.STATUS, TopicKind.ALARM
    seq = rng.randint(1, 2**31)
    return [
        (hb, panel.heartbeat(temperature=200.0), out_of_range),
        (hb, panel.heartbeat(temperature=math.nan), out_of_range),
        (hb, panel.heartbeat(humidity=-math.inf), out_of_range),
        (hb, panel.heartbeat(fan_pwm_duty=101), out_of_range),
        (hb, panel.heartbeat(eth_interface=7), out_of_range),
        (hb, panel.heartbeat(uptime=2**32 - 1), out_of_range),
        (hb, panel.heartbeat(device_db_id=2**31), out_of_range),
        (hb, panel.heartbeat(firmware="2.1\x00"), out_of_range),
        (hb, panel.heartbeat(firmware="v" * 100), out_of_range),
        (hb, panel.heartbeat(firmware=huge), too_large),
        (hb, panel.heartbeat(mac_address=panel.mac[:-1] + "\x00"), RejectReason.BAD_MAC),
        (hb, panel.heartbeat(mac_address=""), RejectReason.BAD_MAC),
        (hb, GHOST.heartbeat(), RejectReason.UNREGISTERED),
        (st, panel.status(hostname="ESG_ALARM_9999"), RejectReason.HOSTNAME_MISMATCH),
        (st, panel.status(hostname=panel.hostname + "\x00"), RejectReason.HOSTNAME_MISMATCH),
        (st, panel.status(country="E\x00"), out_of_range),
        (st, panel.status(country="ESPA"), out_of_range),
        (st, panel.status(country="ES\n"), out_of_range),
        (st, panel.status(partition=7), out_of_range),
        (st, panel.status(rssi=5), out_of_range),
        (st, panel.status(latitude=91.0), out_of_range),
        (st, panel.status(state=99), out_of_range),
        (st, panel.status(network=9), out_of_range),
        (st, panel.status(ip_address="999.1.1.1"), out_of_range),
        (st, panel.status(ip_address="1" * 3000), out_of_range),
        (st, panel.status(firmware=huge), too_large),
        (al, panel.alarm(seq, type=99), out_of_range),
        (al, panel.alarm(seq, state=42), out_of_range),
        (al, panel.alarm(seq, priority=9), out_of_range),
        (al, panel.alarm(seq, type=pb.AlarmEvent.OUTPUT_EVENT, output_type=3), out_of_range),
        (al, panel.alarm(seq, duration_seconds=2**31), out_of_range),
        (TopicKind.RESPONSE, pb.CommandResponse(request_id="not-a-uuid", stage=1), out_of_range),
        (
            TopicKind.RESPONSE,
            pb.CommandResponse(request_id=str(uuid.UUID(int=rng.getrandbits(128))), stage=1),
            RejectReason.UNKNOWN_REQUEST,
        ),
    ]


def crafted(rng: random.Random, traffic: Traffic) -> None:
    panel = rng.choice(PANELS)
    kind, message, reason = rng.choice(_crafted(panel, rng))
    payload = message if isinstance(message, bytes) else message.SerializeToString()  # type: ignore[attr-defined]
    traffic.send_rejected(traffic.topic(panel, kind), payload, reason)


def sensor_topic(traffic: Traffic, serial: str) -> str:
    return traffic.scheme.topic(serial, TopicKind.TELEMETRY)


def valid_reading(rng: random.Random, traffic: Traffic) -> None:
    serial = rng.choice(SENSORS)
    payload = reading(
        serial, now_ms(), vibration=round(rng.uniform(0, 20), 2), running=rng.random() < 0.5
    )
    traffic.send_valid(sensor_topic(traffic, serial), payload)
    traffic.readings += 1


def reading_mutant(rng: random.Random, traffic: Traffic) -> None:
    serial = rng.choice((*SENSORS, "VIB-STRANGER"))
    payload = mutate(rng, reading(serial, now_ms(), vibration=5.0, temperature=40.0))
    traffic.send_unknown(sensor_topic(traffic, serial), payload)


def crafted_reading(rng: random.Random, traffic: Traffic) -> None:
    """A reading the decoder accepts but the device's type refuses, or of no device."""
    serial = rng.choice(SENSORS)
    cases = [
        (serial, {"vibration": 101.0}, RejectReason.OUT_OF_RANGE),
        (serial, {"vibration": -1}, RejectReason.OUT_OF_RANGE),
        (serial, {"spin": 1.0}, RejectReason.UNKNOWN_METRIC),
        (serial, {"running": 1}, RejectReason.WRONG_TYPE),
        (serial, {"temperature": False}, RejectReason.WRONG_TYPE),
        ("VIB-NOBODY", {"vibration": 1.0}, RejectReason.UNKNOWN_SERIAL),
    ]
    target, metrics, reason = rng.choice(cases)
    payload = reading(target, now_ms(), **metrics)
    traffic.send_rejected(sensor_topic(traffic, target), payload, reason)


def robot_topic(traffic: Traffic, robot: str, kind: TopicKind = TopicKind.ROBOT) -> str:
    return traffic.scheme.topic(robot, kind)


def valid_robot_state(rng: random.Random, traffic: Traffic, robot: str | None = None) -> None:
    robot = robot or rng.choice(ROBOTS)
    payload = robot_state(
        robot,
        now_ms(),
        battery={"percentage": round(rng.uniform(10, 100), 1), "charging": rng.random() < 0.2},
        servos={"servo_1": {"temperature": round(rng.uniform(30, 70), 1)}},
    )
    traffic.send_valid(robot_topic(traffic, robot), payload)
    traffic.robot_parts += 2


def robot_mutant(rng: random.Random, traffic: Traffic) -> None:
    robot = rng.choice((*ROBOTS, "tonypi_stranger"))
    if rng.random() < 0.5:
        template = robot_state(robot, now_ms(), battery={"voltage": 12.0}, imu={"accel_z": 9.8})
        topic = robot_topic(traffic, robot)
    else:
        template = robot_job("J-1", robot, done=rng.randint(0, 9))
        topic = robot_topic(traffic, robot, TopicKind.JOB)
    traffic.send_unknown(topic, mutate(rng, template))


def crafted_robot(rng: random.Random, traffic: Traffic) -> None:
    """A robot message with one bad value, and the reason it must be refused with."""
    robot = rng.choice(ROBOTS)
    cases = [
        (robot_state(robot, battery={"percentage": 140.0}), RejectReason.OUT_OF_RANGE),
        (robot_state(robot, servos={"servo_1": {"grip": 1.0}}), RejectReason.UNKNOWN_METRIC),
        (robot_state(robot, battery={"charging": 1}), RejectReason.WRONG_TYPE),
        (robot_state("tonypi_elsewhere", imu={"accel_x": 0.0}), RejectReason.HOSTNAME_MISMATCH),
    ]
    payload, reason = rng.choice(cases)
    traffic.send_rejected(robot_topic(traffic, robot), payload, reason)
    if rng.random() < 0.3:  # a job of a robot never seen
        topic = robot_topic(traffic, "tonypi_ghost", TopicKind.JOB)
        traffic.send_rejected(
            topic, robot_job("J-1", "tonypi_ghost", done=1), RejectReason.UNREGISTERED
        )


def replay(rng: random.Random, traffic: Traffic) -> None:
    """A used alarm sequence with other content (a new timestamp suffices)."""
    used = [panel for panel in PANELS if panel.mac in traffic.sequences]
    if not used:
        return
    panel = rng.choice(used)
    message = panel.alarm(rng.randint(1, traffic.sequences[panel.mac]))
    topic = traffic.topic(panel, TopicKind.ALARM)
    traffic.send_rejected(topic, message.SerializeToString(), RejectReason.REPLAY)


def ghost_last_will(rng: random.Random, traffic: Traffic) -> None:
    payload = rng.choice([b"", rng.randbytes(8)])
    topic = traffic.topic(GHOST, TopicKind.LWT)
    traffic.send_rejected(topic, payload, RejectReason.UNREGISTERED)


GENERATORS: tuple[tuple[Callable[[random.Random, Traffic], None], int], ...] = (
    (valid_heartbeat, 30),
    (valid_alarm, 8),
    (mutant, 30),
    (random_bytes, 6),
    (empty_payload, 2),
    (wrong_topic, 5),
    (crafted, 15),
    (replay, 2),
    (ghost_last_will, 2),
    (valid_reading, 12),
    (reading_mutant, 12),
    (crafted_reading, 6),
    (valid_robot_state, 10),
    (robot_mutant, 10),
    (crafted_robot, 5),
)


def build_traffic(seed: int, prefix: str) -> Traffic:
    """The statuses registering PANELS, then random traffic interleaving valid and bad input."""
    rng = random.Random(seed)
    scheme = TopicScheme(prefix)
    traffic = Traffic(scheme, Decoder(scheme))
    for panel in PANELS:
        traffic.send_valid(
            traffic.topic(panel, TopicKind.STATUS), panel.status().SerializeToString()
        )
    for robot in ROBOTS:
        valid_robot_state(rng, traffic, robot)
    generators = [g for g, _ in GENERATORS]
    weights = [w for _, w in GENERATORS]
    while len(traffic.messages) < MESSAGES_PER_SEED:
        rng.choices(generators, weights)[0](rng, traffic)
    return traffic


@pytest.mark.parametrize("seed", SEEDS)
async def test_fuzzed_traffic_is_all_accounted_for(
    ingest: IngestService, device: Publisher, db: psycopg.Connection[Any], seed: int
) -> None:
    """Amid random and mutated input the service survives and every message is accounted for."""
    type_id = declare(db, VIBRATION)
    for serial in SENSORS:
        add_device(db, serial, type_id)
    traffic = build_traffic(seed, ingest.topic_prefix)
    for topic, payload in traffic.messages:
        await device.raw(topic, payload)
    total = len(traffic.messages)
    await ingest.wait_processed(total, timeout_s=30)

    assert ingest.failure is None
    totals = ingest.pipeline.totals
    assert totals.device_messages == total  # fleetwatch's own commands aside
    letters = db.execute("SELECT topic, payload, reason, detail FROM dead_letters").fetchall()
    assert len(letters) == sum(totals.dead_letters.values())
    # Accepted includes duplicates: a mutant may repeat a stranger's heartbeat, say.
    assert totals.accepted + len(letters) == total
    assert totals.accepted >= len(traffic.valid)
    known = {reason.value for reason in RejectReason}
    assert all(reason in known and detail for _, _, reason, detail in letters)
    kept = Counter((topic, bytes(payload), reason) for topic, payload, reason, _ in letters)
    assert traffic.rejections - kept == Counter()  # each expected rejection, with its reason
    assert not traffic.valid & {(topic, payload) for topic, payload, _ in kept}

    macs = [panel.mac for panel in PANELS]
    received = db.execute(
        "SELECT sum(h.received) FROM heartbeat_counts h JOIN devices d ON d.id = h.device_id "
        "WHERE d.mac_address = ANY(%s::macaddr[])",
        [macs],
    ).fetchone()
    assert received == (traffic.heartbeats,)
    readings = db.execute(
        "SELECT coalesce(sum(h.received), 0) FROM heartbeat_counts h "
        "JOIN devices d ON d.id = h.device_id WHERE d.serial_number = ANY(%s)",
        [list(SENSORS)],
    ).fetchone()
    assert readings == (traffic.readings,)
    parts = db.execute(
        "SELECT coalesce(sum(h.received), 0) FROM heartbeat_counts h "
        "JOIN robots r ON r.device_id = h.device_id WHERE r.robot_id = ANY(%s)",
        [list(ROBOTS)],
    ).fetchone()
    assert parts == (traffic.robot_parts,)
    sequences = db.execute(
        "SELECT d.mac_address::text, count(*), max(s.sequence) FROM alarm_sequences s "
        "JOIN devices d ON d.id = s.device_id WHERE d.mac_address = ANY(%s::macaddr[]) "
        "GROUP BY d.mac_address",
        [macs],
    ).fetchall()
    assert {mac: (n, last) for mac, n, last in sequences} == {
        mac: (last, last) for mac, last in traffic.sequences.items()
    }
    assert db.execute("SELECT count(*) FROM influx_outbox").fetchone() == (0,)
