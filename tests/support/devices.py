"""Builders of valid device messages and a publisher that plays a device over MQTT."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import aiomqtt

from fleetwatch.settings import MqttSettings
from ingest.broker import make_client
from ingest.contract import TopicKind, TopicScheme, pb

_last_ms = 0


def now_ms() -> int:
    """The wall clock in epoch ms, strictly increasing between calls (a device's clock ticks)."""
    global _last_ms  # noqa: PLW0603 - one clock for every fake device of the process
    _last_ms = max(_last_ms + 1, int(datetime.now(UTC).timestamp() * 1000))
    return _last_ms


@dataclass(frozen=True, slots=True)
class FakePanel:
    """One simulated alarm panel: its identity and message builders."""

    number: int

    @property
    def hostname(self) -> str:
        return f"ESG_ALARM_{self.number:04d}"

    @property
    def mac(self) -> str:
        return "aa:bb:cc:{:02x}:{:02x}:{:02x}".format(*self.number.to_bytes(3, "big"))

    def status(self, **changes: object) -> pb.StatusMessage:
        values: dict[str, object] = {
            "mac_address": self.mac.upper(),
            "hostname": self.hostname,
            "firmware": "2.1.0",
            "partition": 1,
            "ota_validated": True,
            "uptime": 60,
            "boot_count": 3,
            "state": pb.StatusMessage.NORMAL,
            "free_heap": 120_000,
            "min_heap": 90_000,
            "network": pb.StatusMessage.NETWORK_WIFI,
            "ip_address": "192.0.2.10",
            "rssi": -61,
            "connected": True,
            "has_ip": True,
            "mqtt_connected": True,
            "ntp_synced": True,
            "temperature": 21.0,
            "humidity": 40.0,
            "country": "ES",
            "zone": 3,
            "latitude": 40.4168,
            "longitude": -3.7038,
            "timestamp": now_ms(),
        }
        values.update(changes)
        return pb.StatusMessage(**values)  # type: ignore[arg-type]

    def heartbeat(self, **changes: object) -> pb.Heartbeat:
        values: dict[str, object] = {
            "mac_address": self.mac.upper(),
            "firmware": "2.1.0",
            "uptime": 70,
            "temperature": 21.0,
            "humidity": 40.0,
            "fan_pwm_duty": 30,
            "eth_interface": 0,
            "timestamp": now_ms(),
        }
        values.update(changes)
        return pb.Heartbeat(**values)  # type: ignore[arg-type]

    def alarm(self, sequence: int, **changes: object) -> pb.AlarmEvent:
        values: dict[str, object] = {
            "mac_address": self.mac.upper(),
            "sequence": sequence,
            "timestamp": now_ms(),
            "type": pb.AlarmEvent.PANIC1,
            "state": pb.AlarmEvent.ACTIVE,
            "priority": pb.AlarmEvent.CRITICAL,
            "physical_state": True,
        }
        values.update(changes)
        return pb.AlarmEvent(**values)  # type: ignore[arg-type]


class Publisher:
    """Publishes device messages under a test's topic prefix (QoS 1)."""

    def __init__(self, client: aiomqtt.Client, prefix: str) -> None:
        self._client = client
        self._scheme = TopicScheme(prefix)

    async def send(self, panel: FakePanel, kind: TopicKind, message: object) -> None:
        payload = message if isinstance(message, bytes) else message.SerializeToString()  # type: ignore[attr-defined]
        await self._client.publish(self._scheme.topic(panel.hostname, kind), payload, qos=1)

    async def raw(self, topic: str, payload: bytes) -> None:
        await self._client.publish(topic, payload, qos=1)


def publisher_client(settings: MqttSettings) -> aiomqtt.Client:
    return make_client(settings)
