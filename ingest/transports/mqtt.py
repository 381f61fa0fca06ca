"""MQTT transport: a persistent QoS 1 session whose messages are acknowledged on demand.

Ingest must acknowledge a message only after its batch is committed, or a crash in between
loses it. The connection is ingest's own MQTT wire protocol (``mqtt_wire``), which hands over
what each socket read held at once and acknowledges a batch in one write. With a fixed client
id and ``clean_session=False`` the broker redelivers whatever was not acknowledged when the
connection ends, so a crash costs a redelivery, never a loss.

Addresses are topics, ``{prefix}/{hostname}/{kind}`` (``TopicScheme``): the decoder parses a
delivery's topic with it, and ``send`` builds a device's command topic with it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from fleetwatch.settings import MqttSettings
from ingest.contract import TopicError, TopicKind, TopicScheme
from ingest.decoding import DecodeLimits, Decoder
from ingest.transports.base import Delivery
from ingest.transports.errors import AddressError, TransportError
from ingest.transports.inbox import Inbox
from ingest.transports.mqtt_wire import ConnectOptions, MqttWire, Publish, PublishSink, open_wire

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
KEEPALIVE_S = 60


async def connect(
    settings: MqttSettings, client_id: str, sink: PublishSink, *, clean_session: bool
) -> tuple[MqttWire, bool]:
    """A connection to the configured broker as ``client_id``, and whether the broker kept
    a session for it."""
    password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    options = ConnectOptions(
        client_id=client_id,
        username=settings.mqtt_username,
        password=password,
        clean_session=clean_session,
        keepalive_s=KEEPALIVE_S,
    )
    return await open_wire(settings.mqtt_host, settings.mqtt_port, options, sink, CONNECT_TIMEOUT_S)


async def subscribe_all(wire: MqttWire, addressing: TopicScheme, kept: bool) -> None:
    """Subscribe to the whole prefix at QoS 1: not just the device kinds, for a message on
    a wrong topic must reach the decoder to be dead-lettered, not vanish unseen."""
    subscription = addressing.subscription()
    try:
        if kept:  # the answer queues behind the session's backlog: see subscribe_later
            wire.subscribe_later(subscription, 1)
        else:
            await wire.subscribe(subscription, 1, CONNECT_TIMEOUT_S)
    except TransportError as exc:
        raise TransportError(f"MQTT subscribe: {exc}") from exc


async def publish_command(
    wire: MqttWire | None, addressing: TopicScheme, device: str, kind: TopicKind, payload: bytes
) -> None:
    """Publish to ``device``'s topic of ``kind`` at QoS 1 (the broker keeps it for a device's
    persistent session while the device is away)."""
    try:
        topic = addressing.topic(device, kind)
    except TopicError as exc:
        raise AddressError(str(exc)) from exc
    if wire is None:
        raise TransportError("MQTT is not connected")
    try:
        await wire.publish(topic, payload, CONNECT_TIMEOUT_S)
    except TransportError as exc:
        raise TransportError(f"MQTT publish: {exc}") from exc


# What acknowledging one MQTT message takes: the connection that delivered it (a packet id
# means nothing on another one) and its packet id (0: QoS 0, nothing to acknowledge).
MqttReceipt = tuple[int, int]


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
        self._wire: MqttWire | None = None
        self._connection = 0

    @property
    def connected(self) -> bool:
        return self._wire is not None

    async def __aenter__(self) -> Self:
        self._connection += 1
        connection = self._connection
        wire, kept = await connect(
            self._settings,
            self._client_id,
            lambda publishes: self._receive(connection, publishes),
            clean_session=False,
        )
        self._wire = wire
        self._inbox.open(wire.closed, on_room=wire.resume)
        try:
            await subscribe_all(wire, self.addressing, kept)
        except TransportError as exc:
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            raise
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
        if self._wire is not None:
            wire, self._wire = self._wire, None
            await wire.close()

    def _receive(self, connection: int, publishes: list[Publish]) -> bool:
        """One socket read's publishes into the inbox; False (stop reading) once it is full.

        Called from the connection's first read on, before ``__aenter__`` returns: a kept
        session's backlog follows the CONNACK at once, and what is not taken now would not
        be delivered again before the next connection.
        """
        if connection != self._connection:
            return True  # the tail of a connection being closed: the broker sends it again
        name, now = self.name, datetime.now(UTC)
        deliveries = [
            Delivery(
                transport=name,
                address=topic,
                payload=payload,
                received_at=now,
                receipt=(connection, packet_id),
                redelivered=dup,
            )
            for topic, payload, packet_id, dup in publishes
        ]
        return self._inbox.extend(deliveries)

    async def next_batch(self, max_size: int, max_wait_s: float) -> list[Delivery]:
        """Wait for one delivery, then gather more for up to ``max_wait_s`` or ``max_size``."""
        if self._wire is None:
            raise TransportError("MQTT transport is not connected")
        return await self._inbox.next_batch(max_size, max_wait_s)

    def decoder(self, limits: DecodeLimits) -> Decoder:
        """The wire contract's decoder, reading this transport's topics."""
        return Decoder(self.addressing, limits)

    def ack(self, deliveries: Sequence[Delivery], verdicts: Sequence[str | None] = ()) -> int:
        """Acknowledge deliveries of the current connection, in order, in one write;
        returns how many.

        MQTT cannot tell a device its message was dead-lettered: ``verdicts`` are not used.
        """
        wire = self._wire
        if wire is None:
            return 0
        current = self._connection
        ids = [
            receipt[1]
            for delivery in deliveries
            if isinstance(receipt := delivery.receipt, tuple)
            and receipt[0] == current
            and receipt[1]
        ]
        try:
            wire.ack(ids)
        except TransportError:
            return 0  # the connection just ended: the broker delivers them again
        return len(ids)

    @property
    def positions(self) -> None:
        """None: what is not acknowledged is delivered again by its sender."""
        return None

    def holds(self, device: str) -> bool:
        """Never: devices are reached through the broker, not a connection of ingest's own."""
        return False

    async def send(self, device: str, kind: TopicKind, payload: bytes) -> None:
        """Publish to the device's topic of ``kind`` at QoS 1."""
        await publish_command(self._wire, self.addressing, device, kind, payload)

    @property
    def backlog(self) -> int:
        """Deliveries received but not yet taken into a batch."""
        return self._inbox.backlog
