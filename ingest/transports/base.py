"""The transport boundary: what every way of reaching devices provides to ingest.

A transport receives device messages and hands them over as ``Delivery`` values, which say
which transport received them, the address they arrived on, their bytes and a receipt. The
pipeline decodes and stores them without knowing the transport; the service acknowledges a
batch to the transport that delivered it only after the batch committed. Commands go the
other way: ``send`` addresses a device and a message kind, and the transport maps them onto
its own addresses (MQTT: a topic).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

from ingest.contract import TopicKind

if TYPE_CHECKING:
    from ingest.decoding import DecodeLimits
    from ingest.messages import DeviceMessage
    from ingest.transports.positions import StreamPositions


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One message a device sent, as any transport hands it to the pipeline.

    Attributes:
        transport: Name of the transport that received it; only that one can acknowledge it.
        address: Where the device sent it, in that transport's terms (MQTT: the topic).
        payload: The message as the device sent it.
        received_at: When ingest received it (timezone-aware).
        receipt: What the transport needs to acknowledge it; opaque to everything else.
        redelivered: The sender says it may have delivered this message before (MQTT's DUP
            flag): if it is rejected again, its dead letter is not kept twice.
    """

    transport: str
    address: str
    payload: bytes
    received_at: datetime
    receipt: object = None
    redelivered: bool = False

    def __post_init__(self) -> None:
        if self.received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware")


class Origin(Protocol):
    """The device a message came from and what kind of message it is."""

    @property
    def hostname(self) -> str: ...

    @property
    def kind(self) -> TopicKind: ...


class Addressing(Protocol):
    """How a transport's addresses name a device and a message kind (MQTT: ``TopicScheme``)."""

    def parse(self, address: str) -> Origin:
        """The origin an address names; ``TopicError`` if it names none."""
        ...


class MessageDecoder(Protocol):
    """Turns one transport's deliveries into validated messages (MQTT: ``Decoder``)."""

    def decode(self, address: str, payload: bytes, received_at: datetime) -> DeviceMessage | None:
        """The validated message, or None for what is not input (ignored); raises
        ``Rejected`` with the reason the delivery must be dead-lettered."""
        ...


class Transport(Protocol):
    """One way devices reach ingest (MQTT today; WebSocket next).

    Used as an async context manager for one connection (or listening session); it can be
    entered again after it exited, which is how the service reconnects. While entered,
    ``next_batch`` yields what devices sent, ``ack`` acknowledges what was committed and
    ``send`` delivers commands. Failures surface as ``TransportError``.
    """

    @property
    def name(self) -> str:
        """Unique among a service's transports; deliveries carry it."""
        ...

    def decoder(self, limits: DecodeLimits) -> MessageDecoder:
        """The decoder of this transport's deliveries (its addresses, its payloads)."""
        ...

    @property
    def connected(self) -> bool:
        """Whether the transport is entered and can receive and send."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def next_batch(self, max_size: int, max_wait_s: float) -> list[Delivery]:
        """Wait for one delivery, then gather more for up to ``max_wait_s`` or ``max_size``;
        ``TransportError`` once the connection ended."""
        ...

    def ack(self, deliveries: Sequence[Delivery], verdicts: Sequence[str | None] = ()) -> int:
        """Acknowledge committed deliveries to their senders; returns how many were.

        ``verdicts`` (when given, one per delivery) say which were dead-lettered and why, for
        transports that can tell their sender. Deliveries of an earlier connection are
        skipped: their sender delivers them again.
        """
        ...

    def holds(self, device: str) -> bool:
        """Whether this transport has a connection of its own to ``device`` now."""
        ...

    @property
    def positions(self) -> StreamPositions | None:
        """Where a transport reading a partitioned stream keeps its place, saved in each
        batch's transaction; None for a transport whose senders redeliver what was not
        acknowledged (MQTT, WebSocket)."""
        ...

    async def send(self, device: str, kind: TopicKind, payload: bytes) -> None:
        """Deliver one message of ``kind`` to ``device`` (commands).

        ``DeviceUnreachableError`` if the device cannot be reached now, ``AddressError`` if
        it can never be addressed, ``TransportError`` if the connection failed.
        """
        ...
