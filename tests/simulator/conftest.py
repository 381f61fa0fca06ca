"""Fixtures and helpers shared by the simulator tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiomqtt
import pytest

from fleetwatch.settings import MqttSettings
from ingest.broker import make_client
from ingest.contract import TopicScheme
from simulator import Behaviour, Emission, Fleet, FleetOptions
from simulator.run import RunOptions, Simulator
from tests.ingest.conftest import db, migrated_pg  # noqa: F401 - fixtures the e2e test uses

# A test start instant (2025-10-09T08:53:20Z): streams built from it are comparable.
START_MS = 1_760_000_000_000
DAY_MS = 86_400_000

# Everything happens often enough to be seen in minutes rather than months.
BUSY = Behaviour(
    panic_per_day=150.0,
    tamper_per_day=60.0,
    output_test_per_day=150.0,
    reboot_per_day=30.0,
    network_drop_per_day=30.0,
)


def generate(options: FleetOptions, until_s: float, prefix: str = "fleet") -> list[Emission]:
    """The whole stream of a fleet started at START_MS, up to ``until_s`` simulated seconds."""
    fleet = Fleet(options, TopicScheme(prefix), START_MS)
    return list(fleet.stream(START_MS + round(until_s * 1000)))


@pytest.fixture
def busy() -> Behaviour:
    """A behaviour where every kind of incident happens within simulated minutes."""
    return BUSY


@asynccontextmanager
async def running_simulator(
    mqtt: MqttSettings, fleet: FleetOptions, options: RunOptions
) -> AsyncIterator[tuple[Simulator, asyncio.Task[object]]]:
    """A simulator running in the background, yielded once it is subscribed; stopped after."""
    simulator = Simulator(mqtt, fleet, options)
    stop = asyncio.Event()
    task: asyncio.Task[object] = asyncio.create_task(simulator.run(stop))
    connected = asyncio.create_task(simulator.connected.wait())
    async with asyncio.timeout(10):
        await asyncio.wait({task, connected}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # surfaces the start-up error
    try:
        yield simulator, task
    finally:
        stop.set()
        connected.cancel()
        async with asyncio.timeout(20):
            await task


@asynccontextmanager
async def listener(mqtt: MqttSettings, *topics: str) -> AsyncIterator[aiomqtt.Client]:
    """A QoS 1 subscriber to ``topics``, subscribed before it is yielded."""
    async with make_client(mqtt) as client:
        for topic in topics:
            await client.subscribe(topic, qos=1)
        yield client


async def next_matching(
    client: aiomqtt.Client, accept: Callable[[aiomqtt.Message], bool], timeout_s: float = 10.0
) -> aiomqtt.Message:
    """The next message ``accept`` takes (fails the test after ``timeout_s``)."""
    async with asyncio.timeout(timeout_s):
        async for message in client.messages:
            if accept(message):
                return message
    raise AssertionError("subscription ended")


def kind_of(emission: Emission) -> tuple[str, str]:
    """(hostname, kind) of an emission's topic."""
    _, hostname, kind = emission.topic.rsplit("/", 2)
    return hostname, kind
