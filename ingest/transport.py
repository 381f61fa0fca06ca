"""MQTT transport: a persistent QoS 1 session whose messages are acknowledged on demand.

aiomqtt 2.x acknowledges each message as soon as it is delivered to the application. Ingest
must acknowledge only after the message's batch is committed, or a crash in between loses it.
aiomqtt 2 has no public switch for that, but the paho client underneath does: manual
acknowledgement is turned on before connecting and ``paho.Client.ack`` is called per message
after the commit. (aiomqtt 3 exposes this directly; 2.x is what the registries carry.) With a
fixed client id and ``clean_session=False`` the broker redelivers whatever was not
acknowledged when the connection ends, so a crash costs a redelivery, never a loss.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import aiomqtt

from fleetwatch.settings import MqttSettings
from ingest.broker import make_client
from ingest.contract import TopicScheme

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One received message and what is needed to acknowledge it."""

    topic: str
    payload: bytes
    received_at: datetime
    mid: int
    qos: int
    connection: int  # which connection delivered it: a mid means nothing on another one


class MqttTransport:
    """Subscribes to every device topic under a prefix and feeds a bounded queue.

    Use as an async context manager; iterate ``deliveries()``; call ``ack`` after commit.
    """

    def __init__(
        self,
        settings: MqttSettings,
        *,
        client_id: str | None = None,
        queue_size: int = 20_000,
    ) -> None:
        self._settings = settings
        self._scheme = TopicScheme(settings.topic_prefix)
        self._client_id = client_id or settings.mqtt_client_id
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue(maxsize=queue_size)
        self._client: aiomqtt.Client | None = None
        self._reader: asyncio.Task[None] | None = None
        self._getter: asyncio.Future[Delivery] | None = None
        self._connection = 0

    async def __aenter__(self) -> Self:
        client = make_client(self._settings, client_id=self._client_id, clean_session=False)
        client._client.manual_ack_set(True)
        await client.__aenter__()
        self._client = client
        self._connection += 1
        # The whole prefix, not just the device kinds: a message on a wrong topic must reach
        # the decoder to be dead-lettered, not vanish unseen.
        await client.subscribe(self._scheme.subscription(), qos=1)
        self._reader = asyncio.create_task(self._read(client, self._connection))
        logger.info("subscribed to %s/# as %s", self._scheme.prefix, self._client_id)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._getter is not None:
            self._getter.cancel()
            self._getter = None
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        if self._client is not None:
            client, self._client = self._client, None
            await client.__aexit__(exc_type, exc, tb)

    async def _read(self, client: aiomqtt.Client, connection: int) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            delivery = Delivery(
                topic=str(message.topic),
                payload=payload,
                received_at=datetime.now(UTC),
                mid=message.mid,
                qos=message.qos,
                connection=connection,
            )
            # A full queue blocks here, which stops reading from the socket: back-pressure.
            await self._queue.put(delivery)

    async def next_batch(self, max_size: int, max_wait_s: float) -> list[Delivery]:
        """Wait for one delivery, then gather more for up to ``max_wait_s`` or ``max_size``."""
        first = await self._next(None)
        assert first is not None
        batch = [first]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait_s
        while len(batch) < max_size:
            while not self._queue.empty() and len(batch) < max_size:
                batch.append(self._queue.get_nowait())
            remaining = deadline - loop.time()
            if remaining <= 0 or len(batch) >= max_size:
                break
            delivery = await self._next(remaining)
            if delivery is None:
                break
            batch.append(delivery)
        return batch

    async def _next(self, timeout_s: float | None) -> Delivery | None:
        """The next delivery, or None after ``timeout_s``.

        The pending queue read survives a timeout and is reused by the next call: cancelling
        it could lose a message it had already taken off the queue.
        """
        assert self._reader is not None
        if self._getter is None:
            self._getter = asyncio.ensure_future(self._queue.get())
        waiting: set[asyncio.Future[Any]] = {self._getter, self._reader}
        done, _ = await asyncio.wait(
            waiting, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if self._getter in done:
            getter, self._getter = self._getter, None
            return getter.result()
        if self._reader in done:
            self._reader.result()  # re-raises the connection's MqttError
            raise aiomqtt.MqttError("message stream ended")
        return None

    def ack(self, deliveries: Sequence[Delivery]) -> int:
        """Acknowledge deliveries of the current connection, in order; returns how many."""
        if self._client is None:
            return 0
        paho = self._client._client
        acked = 0
        for delivery in deliveries:
            if delivery.qos > 0 and delivery.connection == self._connection:
                paho.ack(delivery.mid, delivery.qos)
                acked += 1
        return acked

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish one message (commands to devices)."""
        if self._client is None:
            raise aiomqtt.MqttError("transport is not connected")
        await self._client.publish(topic, payload, qos=qos)

    @property
    def backlog(self) -> int:
        """Deliveries received but not yet taken into a batch."""
        return self._queue.qsize()


async def iterate_batches(
    transport: MqttTransport, max_size: int, max_wait_s: float
) -> AsyncIterator[list[Delivery]]:
    """Batches from ``transport`` until its connection ends (then MqttError propagates)."""
    while True:
        yield await transport.next_batch(max_size, max_wait_s)
