"""The generator: deterministic for a seed, distinct across seeds, stable identities."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

from ingest.contract import TopicScheme
from simulator import Behaviour, Fleet, FleetOptions
from tests.simulator.conftest import START_MS, generate, kind_of


def test_same_seed_same_stream(busy: Behaviour) -> None:
    """Two fleets with the same seed and size produce the identical (time, topic, payload) list."""
    options = FleetOptions(devices=30, seed=42, behaviour=busy)
    first = generate(options, until_s=3600)
    second = generate(options, until_s=3600)
    assert len(first) > 10_000
    assert {kind_of(e)[1] for e in first} == {"status", "heartbeat", "alarm", "lwt"}
    assert first == second


def test_different_seed_different_stream(busy: Behaviour) -> None:
    """Another seed gives another stream, with other MACs."""
    first = generate(FleetOptions(devices=30, seed=42, behaviour=busy), until_s=600)
    other = generate(FleetOptions(devices=30, seed=43, behaviour=busy), until_s=600)
    assert first != other
    macs = {
        p.profile.mac for p in Fleet(FleetOptions(devices=30, seed=42), TopicScheme(), 0).panels
    }
    others = {
        p.profile.mac for p in Fleet(FleetOptions(devices=30, seed=43), TopicScheme(), 0).panels
    }
    assert macs.isdisjoint(others)


def test_stream_is_in_time_order() -> None:
    """Emissions come out sorted by simulated time, starting at the start instant."""
    stream = generate(FleetOptions(devices=20, seed=3), until_s=300)
    times = [e.at_ms for e in stream]
    assert times == sorted(times)
    assert START_MS <= times[0] < START_MS + 5000


def test_identities_are_unique_and_stable() -> None:
    """Hostnames count from ESG_ALARM_0001; MACs are unique, well-formed and fixed by the seed."""
    options = FleetOptions(devices=2000, seed=9)
    panels = Fleet(options, TopicScheme(), START_MS).panels
    again = Fleet(options, TopicScheme(), START_MS + 12345).panels
    hostnames = [p.profile.hostname for p in panels]
    macs = [p.profile.mac for p in panels]
    assert hostnames[:2] == ["ESG_ALARM_0001", "ESG_ALARM_0002"]
    assert hostnames[-1] == "ESG_ALARM_2000"
    assert len(set(macs)) == len(macs) == 2000
    assert all(re.fullmatch(r"([0-9A-F]{2}:){5}[0-9A-F]{2}", mac) for mac in macs)
    assert macs == [p.profile.mac for p in again]


def test_a_few_devices_are_out_of_sync() -> None:
    """About 3 % of the panels, chosen by the seed, are the ones that ignore SET_DEVICE_ID."""
    fleet = Fleet(FleetOptions(devices=1000, seed=4), TopicScheme(), START_MS)
    assert len(fleet.out_of_sync) == 30
    assert (
        fleet.out_of_sync == Fleet(FleetOptions(devices=1000, seed=4), TopicScheme(), 0).out_of_sync
    )


def stream_digest(devices: int, seed: int) -> str:
    """SHA-256 over the (time, topic, payload) stream of an hour of a fleet."""
    digest = hashlib.sha256()
    for emission in generate(FleetOptions(devices=devices, seed=seed), until_s=3600):
        digest.update(f"{emission.at_ms}|{emission.topic}|".encode() + emission.payload)
    return digest.hexdigest()


def test_stream_is_the_same_in_another_process() -> None:
    """Another interpreter, with another hash seed, generates the very same stream."""
    code = "from tests.simulator.test_fleet import stream_digest; print(stream_digest(25, 99))"
    env = {**os.environ, "PYTHONHASHSEED": "4242"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).parents[2],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == stream_digest(25, 99)
