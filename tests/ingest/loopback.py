"""An in-process transport over asyncio queues: devices reach ingest without MQTT.

It implements the ``Transport`` protocol the way a connection-per-device transport
(WebSocket) would: a device connects under its hostname, the transport holds that connection
and routes the device's commands back on it, and each message the device sent is
acknowledged to it (its receipt resolved) only when ingest calls ``ack``. Addresses are
``{hostname}/{kind}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from ingest.contract import TopicError, TopicKind
from ingest.contract.topics import HOSTNAME_PATTERN
from ingest.decoding import DecodeLimits, Decoder
from ingest.transports import (
    AddressError,
    Delivery,
    DeviceUnreachableError,
    Inbox,
    TransportError,
)


@dataclass(frozen=True, slots=True)
class LoopOrigin:
    """The device and message kind a loopback address names."""

    hostname: str
    kind: TopicKind


class LoopAddressing:
    """Addresses ``{hostname}/{kind}``."""

    def parse(self, address: str) -> LoopOrigin:
        hostname, _, kind = address.partition("/")
        if not HOSTNAME_PATTERN.fullmatch(hostname):
            raise TopicError(f"invalid hostname {hostname[:40]!r} in address")
        try:
            return LoopOrigin(hostname, TopicKind(kind))
        except ValueError as exc:
            raise TopicError(f"unknown message kind {kind[:40]!r} in address") from exc


@dataclass(frozen=True, slots=True)
class LoopReceipt:
    """Which device sent a delivery, its number there, and the session that carried it."""

    device: LoopbackDevice
    number: int
    session: int


class LoopbackTransport:
    """Devices connected in-process; use ``connect`` to play one."""

    def __init__(self, name: str = "loopback") -> None:
        self.name = name
        self.addressing = LoopAddressing()
        self._inbox = Inbox(name)
        self._devices: dict[str, LoopbackDevice] = {}
        self._session = 0
        self._open = False

    @property
    def connected(self) -> bool:
        return self._open

    async def __aenter__(self) -> Self:
        self._session += 1
        self._inbox.open()
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._open = False
        self._inbox.close()
        self._devices.clear()  # a transport going down drops its devices' connections

    def connect(self, hostname: str) -> LoopbackDevice:
        """A device opening its connection."""
        if not self._open:
            raise TransportError(f"{self.name} is not connected")
        device = LoopbackDevice(self, hostname)
        self._devices[hostname] = device
        return device

    def disconnect(self, device: LoopbackDevice) -> None:
        """A device closing its connection."""
        if self._devices.get(device.hostname) is device:
            del self._devices[device.hostname]

    async def receive(self, device: LoopbackDevice, address: str, payload: bytes) -> Delivery:
        """Take a message a device sent on its connection."""
        if not self._open:
            raise TransportError(f"{self.name} is not connected")
        device.sent += 1
        receipt = LoopReceipt(device, device.sent, self._session)
        delivery = Delivery(
            transport=self.name,
            address=address,
            payload=payload,
            received_at=datetime.now(UTC),
            receipt=receipt,
        )
        device.receipts[device.sent] = asyncio.get_running_loop().create_future()
        await self._inbox.put(delivery)
        return delivery

    async def next_batch(self, max_size: int, max_wait_s: float) -> list[Delivery]:
        if not self._open:
            raise TransportError(f"{self.name} is not connected")
        return await self._inbox.next_batch(max_size, max_wait_s)

    def decoder(self, limits: DecodeLimits) -> Decoder:
        """The wire contract's decoder over ``{hostname}/{kind}`` addresses."""
        return Decoder(self.addressing, limits)

    def ack(self, deliveries: Sequence[Delivery], verdicts: Sequence[str | None] = ()) -> int:
        acked = 0
        for delivery in deliveries:
            receipt = delivery.receipt
            if isinstance(receipt, LoopReceipt) and receipt.session == self._session:
                future = receipt.device.receipts[receipt.number]
                if not future.done():
                    future.set_result(None)
                acked += 1
        return acked

    @property
    def positions(self) -> None:
        """None: what is not acknowledged is delivered again by its sender."""
        return None

    def holds(self, device: str) -> bool:
        return device in self._devices

    async def send(self, device: str, kind: TopicKind, payload: bytes) -> None:
        if not HOSTNAME_PATTERN.fullmatch(device):
            raise AddressError(f"invalid hostname {device[:40]!r}")
        connected = self._devices.get(device)
        if connected is None:
            raise DeviceUnreachableError(f"{device} is not connected to {self.name}")
        await connected.inbox.put((kind, payload))


@dataclass(eq=False)
class LoopbackDevice:
    """One device's connection: what it sends, which of it ingest acknowledged, and the
    messages ingest sent it."""

    transport: LoopbackTransport
    hostname: str
    sent: int = 0
    receipts: dict[int, asyncio.Future[None]] = field(default_factory=dict)
    inbox: asyncio.Queue[tuple[TopicKind, bytes]] = field(default_factory=asyncio.Queue)

    async def send(self, kind: TopicKind, payload: bytes) -> int:
        """Send one message; its number, for ``acked``."""
        address = f"{self.hostname}/{kind.value}"
        await self.transport.receive(self, address, payload)
        return self.sent

    def is_acked(self, number: int) -> bool:
        return self.receipts[number].done()

    async def acked(self, number: int, timeout_s: float = 10.0) -> None:
        """Wait until message ``number`` is acknowledged (fails the test after the timeout)."""
        async with asyncio.timeout(timeout_s):
            await asyncio.shield(self.receipts[number])

    async def next_message(self, timeout_s: float = 5.0) -> tuple[TopicKind, bytes]:
        """The next message ingest sent this device."""
        async with asyncio.timeout(timeout_s):
            return await self.inbox.get()
