"""Protobuf messages travel through the real MQTT broker."""

from __future__ import annotations

import asyncio

from fleetwatch.settings import MqttSettings
from ingest.broker import make_client
from ingest.contract import TopicKind, TopicScheme, pb


async def test_heartbeat_published_is_received_intact(mqtt_settings: MqttSettings) -> None:
    """A Heartbeat published at QoS 1 arrives on the subscribed topic, byte for byte."""
    scheme = TopicScheme(mqtt_settings.topic_prefix)
    sent = pb.Heartbeat(
        mac_address="AA:BB:CC:DD:EE:01",
        device_db_id=7,
        firmware="2.3.1",
        uptime=3600,
        panic1=True,
        temperature=21.5,
        humidity=48.0,
        fan_pwm_duty=35,
        eth_interface=1,
        timestamp=1_767_225_600_000,
    )
    topic = scheme.topic("ESG_ALARM_0001", TopicKind.HEARTBEAT)
    async with make_client(mqtt_settings) as receiver, make_client(mqtt_settings) as sender:
        await receiver.subscribe(scheme.subscription(TopicKind.HEARTBEAT), qos=1)
        await sender.publish(topic, sent.SerializeToString(), qos=1)
        async with asyncio.timeout(10):
            message = await anext(aiter(receiver.messages))
    assert str(message.topic) == topic
    assert isinstance(message.payload, bytes)
    received = pb.Heartbeat.FromString(message.payload)
    assert received == sent
    assert scheme.parse(str(message.topic)).hostname == "ESG_ALARM_0001"
