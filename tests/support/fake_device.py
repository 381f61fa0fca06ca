"""A scripted device that receives commands over MQTT and answers them as a test decides."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiomqtt

from fleetwatch.settings import MqttSettings
from ingest.broker import make_client
from ingest.contract import TopicKind, TopicScheme, pb
from tests.support.devices import FakePanel, Publisher, now_ms


class FakeDevice:
    """Receives CommandEnvelopes on its command topic; the test sends the responses."""

    def __init__(self, panel: FakePanel, client: aiomqtt.Client, prefix: str) -> None:
        self.panel = panel
        self.publisher = Publisher(client, prefix)
        self.inbox: asyncio.Queue[pb.CommandEnvelope] = asyncio.Queue()
        self._client = client
        self._topic = TopicScheme(prefix).topic(panel.hostname, TopicKind.COMMAND)

    async def _listen(self) -> None:
        async for message in self._client.messages:
            if str(message.topic) == self._topic and isinstance(message.payload, bytes):
                await self.inbox.put(pb.CommandEnvelope.FromString(message.payload))

    async def next_command(self, timeout_s: float = 5.0) -> pb.CommandEnvelope:
        """The next command received (fails the test after ``timeout_s``)."""
        async with asyncio.timeout(timeout_s):
            return await self.inbox.get()

    async def respond(
        self,
        envelope: pb.CommandEnvelope,
        stage: str,
        *,
        success: bool = True,
        code: int = 0,
        error: str = "",
        data: dict[str, str] | None = None,
    ) -> None:
        """Publish a CommandResponse for ``envelope`` at ``stage`` (ACKNOWLEDGED/COMPLETED)."""
        reply = pb.CommandResponse(
            request_id=envelope.request_id,
            sequence=envelope.sequence,
            timestamp=now_ms(),
            stage=pb.CommandResponse.Stage.Value(stage),
            success=success,
            response_code=code,
            error_message=error,
            data=data or {},
        )
        await self.publisher.send(self.panel, TopicKind.RESPONSE, reply)

    async def send(self, kind: TopicKind, message: object) -> None:
        """Publish one of the device's own messages."""
        await self.publisher.send(self.panel, kind, message)


@asynccontextmanager
async def fake_device(mqtt: MqttSettings, panel: FakePanel) -> AsyncIterator[FakeDevice]:
    """A connected fake device subscribed to its command topic."""
    async with make_client(mqtt) as client:
        device = FakeDevice(panel, client, mqtt.topic_prefix)
        await client.subscribe(device._topic, qos=1)
        listener = asyncio.create_task(device._listen())
        try:
            yield device
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
