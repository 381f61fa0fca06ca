"""Simulated robots: every message is valid, batteries drain and charge, jobs progress."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from datetime import UTC, datetime

from ingest.contract import TopicKind, TopicScheme
from ingest.decoding import Decoder
from ingest.messages import JobReport, RobotReport
from simulator import Fleet, FleetOptions

START_MS = 1_767_225_600_000  # 2026-01-01
HOUR_MS = 3_600_000


def stream(robots: int, hours: float, seed: int = 2) -> list[tuple[str, bytes, int]]:
    fleet = Fleet(FleetOptions(devices=0, robots=robots, seed=seed), TopicScheme(), START_MS)
    return [(e.topic, e.payload, e.at_ms) for e in fleet.stream(START_MS + int(hours * HOUR_MS))]


def test_every_robot_message_decodes() -> None:
    """Six simulated hours of three robots: states and job reports all pass the decoder."""
    decoder = Decoder(TopicScheme())
    kinds: Counter[str] = Counter()
    for topic, payload, at_ms in stream(robots=3, hours=6):
        received = datetime.fromtimestamp(at_ms / 1000, tz=UTC)
        message = decoder.decode(topic, payload, received)
        assert isinstance(message, RobotReport | JobReport)
        kinds[type(message).__name__] += 1
    assert kinds["RobotReport"] == 3 * 6 * 720  # every 5 s
    assert kinds["JobReport"] > 100


def test_batteries_drain_at_work_and_charge_and_jobs_end() -> None:
    """Over a day a robot's battery goes down at work and up at the dock; servos are warmer
    while working; jobs complete, a few fail, each job's items only grow."""
    batteries: list[float] = []
    warm: dict[bool, list[float]] = {True: [], False: []}
    items: dict[str, list[int]] = {}
    ends: Counter[str] = Counter()
    for topic, payload, _ in stream(robots=4, hours=24):
        body = json.loads(payload)
        if topic.endswith(f"/{TopicKind.ROBOT.value}"):
            if body["robot_id"] == "tonypi_01":
                batteries.append(body["battery"]["percentage"])
            working = body["servos"]["servo_1"]["speed"] > 0
            warm[working].append(body["servos"]["servo_1"]["load"])
        else:
            items.setdefault(body["job_id"], []).append(body["items_done"])
            if body["status"] != "active":
                ends[body["status"]] += 1
    drops = sum(1 for a, b in itertools.pairwise(batteries) if b < a)
    rises = sum(1 for a, b in itertools.pairwise(batteries) if b > a)
    assert drops > 100
    assert rises > 100
    assert sum(warm[True]) / len(warm[True]) > sum(warm[False]) / len(warm[False]) + 10
    assert ends["completed"] > 5
    assert all(done == sorted(done) for done in items.values())
