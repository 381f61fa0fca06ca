"""MQTT transport: a persistent QoS 1 session whose messages are acknowledged on demand.

aiomqtt 2.x acknowledges each message as soon as it is delivered to the application. Ingest
must acknowledge only after the message's batch is committed, or a crash in between loses it.
aiomqtt 2 has no public switch for that, but the paho client underneath does: manual
acknowledgement is turned on before connecting and ``paho.Client.ack`` is called per message
after the commit. (aiomqtt 3 exposes this directly; 2.x is what the registries carry.) With a
fixed client id and ``clean_session=False`` the broker redelivers whatever was not
acknowledged when the connection ends, so a crash costs a redelivery, never a loss.

Addresses are topics, ``{prefix}/{hostname}/{kind}`` (``TopicScheme``): the decoder parses a
delivery's topic with it, and ``send`` builds a device's command topic with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

import aiomqtt

from fleetwatch.settings import MqttSettings
from ingest.broker import make_client
from ingest.contract import TopicError, TopicKind, TopicScheme
from ingest.decoding import DecodeLimits, Decoder
from ingest.transports.base import Delivery
from ingest.transports.errors import AddressError, TransportError
from ingest.transports.inbox import Inbox

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MqttReceipt:
    """What acknowledging one MQTT message takes."""

    mid: int
    qos: int
    connection: int  # which connection delivered it: a mid means nothing on another one


class MqttTransport:
    """Subscribes to every device topic under a prefix and feeds a bounded inbox.

    Use as an async context manager (once per connection; enter it again to reconnect with
    the same session); take ``next_batch``; call ``ack`` after commit.
    """

    def __init__(
        self,
        settings: MqttSettings,
        *,
        client_id: str | None = None,
        queue_size: int = 20_000,
        name: str = "mqtt",
    ) -> None:
        self.name = name
        self._settings = settings
        self.addressing = TopicScheme(settings.topic_prefix)
        self._client_id = client_id or settings.mqtt_client_id
        self._inbox = Inbox(self.name, queue_size)
        self._client: aiomqtt.Client | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connection = 0

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def __aenter__(self) -> Self:
        client = make_client(self._settings, client_id=self._client_id, clean_session=False)
        client._client.manual_ack_set(True)
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            raise TransportError(f"MQTT broker: {exc}") from exc
        self._client = client
        self._connection += 1
        try:
            # The whole prefix, not just the device kinds: a message on a wrong topic must
            # reach the decoder to be dead-lettered, not vanish unseen.
            await client.subscribe(self.addressing.subscription(), qos=1)
        except aiomqtt.MqttError as exc:
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            raise TransportError(f"MQTT subscribe: {exc}") from exc
        self._reader = asyncio.create_task(self._read(client, self._connection))
        self._inbox.open(self._reader)
        logger.info("subscribed to %s/# as %s", self.addressing.prefix, self._client_id)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # What was received but not taken into a batch is unacknowledged: the broker
        # delivers it again on the next connection.
        self._inbox.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        if self._client is not None:
            client, self._client = self._client, None
            try:
                await client.__aexit__(exc_type, exc, tb)
            except aiomqtt.MqttError as error:
                raise TransportError(f"MQTT disconnect: {error}") from error

    async def _read(self, client: aiomqtt.Client, connection: int) -> None:
        try:
            async for message in client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else b""
                delivery = Delivery(
                    transport=self.name,
                    address=str(message.topic),
                    payload=payload,
                    received_at=datetime.now(UTC),
                    receipt=MqttReceipt(message.mid, message.qos, connection),
                )
                # A full inbox blocks here, which stops reading from the socket: back-pressure.
                await self._inbox.put(delivery)
        except aiomqtt.MqttError as exc:
            raise TransportError(f"MQTT connection lost: {exc}") from exc

    async def next_batch(self, max_size: int, max_wait_s: float) -> list[Delivery]:
        """Wait for one delivery, then gather more for up to ``max_wait_s`` or ``max_size``."""
        if self._client is None:
            raise TransportError("MQTT transport is not connected")
        return await self._inbox.next_batch(max_size, max_wait_s)

    def decoder(self, limits: DecodeLimits) -> Decoder:
        """The wire contract's decoder, reading this transport's topics."""
        return Decoder(self.addressing, limits)

    def ack(self, deliveries: Sequence[Delivery], verdicts: Sequence[str | None] = ()) -> int:
        """Acknowledge deliveries of the current connection, in order; returns how many.

        MQTT cannot tell a device its message was dead-lettered: ``verdicts`` are not used.
        """
        if self._client is None:
            return 0
        paho = self._client._client
        acked = 0
        for delivery in deliveries:
            receipt = delivery.receipt
            if (
                isinstance(receipt, MqttReceipt)
                and receipt.qos > 0
                and receipt.connection == self._connection
            ):
                paho.ack(receipt.mid, receipt.qos)
                acked += 1
        return acked

    def holds(self, device: str) -> bool:
        """Never: devices are reached through the broker, not a connection of ingest's own."""
        return False

    async def send(self, device: str, kind: TopicKind, payload: bytes) -> None:
        """Publish to the device's topic of ``kind`` at QoS 1 (the broker keeps it for a
        device's persistent session while the device is away)."""
        try:
            topic = self.addressing.topic(device, kind)
        except TopicError as exc:
            raise AddressError(str(exc)) from exc
        if self._client is None:
            raise TransportError("MQTT transport is not connected")
        try:
            await self._client.publish(topic, payload, qos=1)
        except aiomqtt.MqttError as exc:
            raise TransportError(f"MQTT publish: {exc}") from exc

    @property
    def backlog(self) -> int:
        """Deliveries received but not yet taken into a batch."""
        return self._inbox.backlog
