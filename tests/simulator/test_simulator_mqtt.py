"""The simulator through the real broker: the generated stream, command answers, errors."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import aiomqtt
import pytest

from fleetwatch.settings import MqttSettings
from ingest.contract import TopicKind, TopicScheme, pb
from simulator import Behaviour, BrokerLostError, FleetOptions
from simulator.run import RunOptions, Simulator
from tests.simulator.conftest import (
    START_MS,
    generate,
    kind_of,
    listener,
    next_matching,
    running_simulator,
)

Response = pb.CommandResponse


async def test_publishes_exactly_the_generated_stream(mqtt_settings: MqttSettings) -> None:
    """What reaches a subscriber is the generator's stream for the seed, in order, at QoS 1."""
    options = FleetOptions(devices=10, seed=5)
    expected = generate(options, until_s=120, prefix=mqtt_settings.topic_prefix)
    received: list[tuple[str, bytes]] = []
    async with listener(mqtt_settings, f"{mqtt_settings.topic_prefix}/#") as client:
        simulator = Simulator(
            mqtt_settings, options, RunOptions(speed=600, duration_s=120), start_ms=START_MS
        )
        stats = await asyncio.wait_for(simulator.run(asyncio.Event()), timeout=30)
        async with asyncio.timeout(10):
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                received.append((str(message.topic), message.payload))
                if len(received) == len(expected):
                    break
    assert received == [(e.topic, e.payload) for e in expected]
    assert stats.published == Counter(kind_of(e)[1] for e in expected)
    assert stats.simulated_s == pytest.approx(120, abs=10)


async def test_answers_a_command_through_the_broker(mqtt_settings: MqttSettings) -> None:
    """A CommandEnvelope on a panel's command topic gets ACKNOWLEDGED, then COMPLETED, and
    the panel's next heartbeat carries the id it was given."""
    scheme = TopicScheme(mqtt_settings.topic_prefix)
    host = "ESG_ALARM_0001"
    reliable = Behaviour(command_silence=0.0, command_failure=0.0, out_of_sync_fraction=0.0)
    options = FleetOptions(devices=5, seed=8, behaviour=reliable)
    command = pb.CommandEnvelope(
        request_id=str(uuid.uuid4()),
        sequence=3,
        timestamp=START_MS,
        type=pb.CommandEnvelope.SYSTEM,
        auth_level=2,
        set_device_id=pb.SetDeviceId(device_db_id=77),
    )
    watched = (scheme.topic(host, kind) for kind in (TopicKind.STATUS, TopicKind.RESPONSE))
    async with (
        listener(mqtt_settings, *watched, scheme.topic(host, TopicKind.HEARTBEAT)) as client,
        running_simulator(mqtt_settings, options, RunOptions(speed=10)) as (simulator, _),
    ):
        await next_matching(client, lambda m: str(m.topic).endswith("/status"))  # it is online
        await client.publish(
            scheme.topic(host, TopicKind.COMMAND), command.SerializeToString(), qos=1
        )
        answers = []
        for _ in range(2):
            message = await next_matching(client, lambda m: str(m.topic).endswith("/response"))
            assert isinstance(message.payload, bytes)
            answers.append(Response.FromString(message.payload))

        def adopted(message: aiomqtt.Message) -> bool:
            if not str(message.topic).endswith("/heartbeat"):
                return False
            assert isinstance(message.payload, bytes)
            return pb.Heartbeat.FromString(message.payload).device_db_id == 77

        await next_matching(client, adopted)
    assert [a.stage for a in answers] == [Response.ACKNOWLEDGED, Response.COMPLETED]
    assert {a.request_id for a in answers} == {command.request_id}
    assert answers[1].success
    assert answers[1].data["device_db_id"] == "77"
    assert simulator.stats.commands == Counter({"answered": 1})


async def test_stops_cleanly_when_asked(mqtt_settings: MqttSettings) -> None:
    """A run without a duration ends promptly once stopped, with what it published counted."""
    async with running_simulator(
        mqtt_settings, FleetOptions(devices=50), RunOptions(speed=100)
    ) as (simulator, task):
        async with listener(mqtt_settings, f"{mqtt_settings.topic_prefix}/+/heartbeat") as client:
            await next_matching(client, lambda _: True)
        assert not task.done()
    assert task.done()
    assert simulator.stats.published["status"] >= 1
    assert simulator.stats.published["heartbeat"] >= 1


async def test_unreachable_broker_is_an_error(mqtt_settings: MqttSettings) -> None:
    """With no broker at the address the run fails at once, naming where it looked."""
    nowhere = mqtt_settings.model_copy(update={"mqtt_port": 1})
    simulator = Simulator(nowhere, FleetOptions(devices=1), RunOptions(duration_s=10))
    with pytest.raises(BrokerLostError, match=r"unreachable at .*:1"):
        await asyncio.wait_for(simulator.run(asyncio.Event()), timeout=15)
