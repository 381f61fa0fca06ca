"""The MQTT 3.1.1 wire protocol as ingest's receive path needs it, on an asyncio protocol.

Why not a general client library: ingest receives thousands of small QoS 1 messages a second
and must acknowledge each only after its batch committed. A general client wakes the event
loop, parses and dispatches once per packet and writes one PUBACK per message; here one read
of the socket is parsed in one pass into a list of publishes, handed over at once, and a
batch's acknowledgements go out as one write. Reading pauses while the consumer is behind
(``pause_reading``), so the broker keeps the backlog rather than ingest's memory.

What is implemented is what a persistent QoS 1 subscriber uses: CONNECT (user, password,
clean session, keep-alive), SUBSCRIBE, inbound PUBLISH at QoS 0 and 1, PUBACK both ways,
outbound PUBLISH at QoS 1 (commands), PINGREQ and DISCONNECT. Anything else from the broker
(QoS 2 flows were never asked for: subscriptions are at QoS 1) ends the connection as a
protocol error.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from ingest.transports.errors import TransportError

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# Packet types (the high nibble of a packet's first byte).
CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14

_CONNACK_REFUSALS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}
_MAX_REMAINING = 268_435_455  # the largest length four bytes of it can say


class ProtocolError(TransportError):
    """The broker sent something this client does not speak; the connection is closed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectOptions:
    """What CONNECT says."""

    client_id: str
    username: str | None = None
    password: str | None = None
    clean_session: bool = True
    keepalive_s: int = 60


# One received PUBLISH: topic, payload, packet id (0 at QoS 0), and its DUP flag (the broker
# may have sent it before: a session's unacknowledged messages sent again on reconnect).
Publish = tuple[str, bytes, int, bool]
# Takes one read's publishes; False asks the connection to stop reading until ``resume``.
PublishSink = Callable[[list[Publish]], bool]


def _string(value: str) -> bytes:
    raw = value.encode()
    return len(raw).to_bytes(2, "big") + raw


def _remaining(length: int) -> bytes:
    """The variable-length encoding of a packet's remaining length."""
    if length > _MAX_REMAINING:
        raise ValueError(f"packet of {length} bytes is too long for MQTT")
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def packet(first: int, body: bytes) -> bytes:
    """A whole packet: its first byte, remaining length and body."""
    return bytes([first]) + _remaining(len(body)) + body


def connect_packet(options: ConnectOptions) -> bytes:
    flags = 0x02 if options.clean_session else 0
    payload = _string(options.client_id)
    if options.username is not None:
        flags |= 0x80
        payload += _string(options.username)
    if options.password is not None:
        flags |= 0x40
        payload += _string(options.password)
    header = _string("MQTT") + bytes([4, flags]) + options.keepalive_s.to_bytes(2, "big")
    return packet(CONNECT << 4, header + payload)


def subscribe_packet(topic_filter: str, qos: int, packet_id: int) -> bytes:
    """A SUBSCRIBE to one filter."""
    body = packet_id.to_bytes(2, "big") + _string(topic_filter) + bytes([qos])
    return packet(SUBSCRIBE << 4 | 0x02, body)


def refusal(topic_filter: str, codes: bytes) -> TransportError | None:
    """Why a SUBACK's return codes refuse the subscription, or None if they grant it."""
    if not codes or codes[0] == 0x80:
        return TransportError(f"MQTT: subscription to {topic_filter} refused")
    return None


def publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    """A QoS 1 PUBLISH."""
    return packet(PUBLISH << 4 | 0x02, _string(topic) + packet_id.to_bytes(2, "big") + payload)


def pubacks(packet_ids: Iterable[int]) -> bytes:
    """PUBACKs for ``packet_ids``, as one buffer for one write."""
    return b"".join(b"\x40\x02" + pid.to_bytes(2, "big") for pid in packet_ids)


class MqttWire(asyncio.Protocol):
    """One connection to the broker. ``open`` connects (CONNECT/CONNACK); received
    publishes go to ``sink`` one socket read at a time, from the first read on (a kept
    session's backlog can arrive right behind the CONNACK); ``closed`` completes when the
    connection ends (with ``TransportError`` unless ``close`` ended it)."""

    def __init__(self, sink: PublishSink) -> None:
        self._sink = sink
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.closed: asyncio.Future[None] = loop.create_future()
        self._connack: asyncio.Future[bool] = loop.create_future()
        self._waiting: dict[int, asyncio.Future[bytes]] = {}  # PUBACK/SUBACK by packet id
        self._ids = itertools.cycle(range(1, 65536))
        self._last_read = time.monotonic()
        self._last_write = self._last_read
        self._keepalive: asyncio.Task[None] | None = None
        self._paused = False  # not reading the socket
        self._full = False  # the sink asked to stop reading
        self._publishing = 0  # publishes waiting for their PUBACK: reading goes on meanwhile
        self._closing = False
        self._gone = asyncio.Event()

    # --- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._gone.set()
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self._closing and not self.closed.done():
            self.closed.set_result(None)  # the broker hung up after our DISCONNECT
        error = TransportError(f"MQTT connection lost: {exc or 'closed by the broker'}")
        self._fail(error)

    def data_received(self, data: bytes) -> None:
        self._last_read = time.monotonic()
        buffer = self._buffer
        buffer += data
        try:
            used, publishes = self._parse(buffer)
        except ProtocolError as exc:
            logger.error("%s", exc)
            self._fail(exc)
            self._abort()
            return
        del buffer[:used]
        if publishes and not self._closing and not self._sink(publishes):
            self.pause()

    def pause(self) -> None:
        """Stop reading the socket (the consumer is behind): the broker keeps the rest.

        Not while a publish waits for its PUBACK, which would wait behind what is not read:
        reading stops once the last of those is answered.
        """
        self._full = True
        if not self._paused and not self._publishing and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def resume(self) -> None:
        """Read the socket again."""
        self._full = False
        self._read_on()

    def _read_on(self) -> None:
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()

    # --- parsing ------------------------------------------------------------------------

    def _parse(self, buf: bytearray) -> tuple[int, list[Publish]]:
        """Every whole packet in ``buf``: the bytes they took and the publishes among them."""
        publishes: list[Publish] = []
        pos, size = 0, len(buf)
        while pos + 1 < size:
            first = buf[pos]
            # The remaining length: up to four bytes, seven bits each, low first.
            length, shift, i = 0, 0, pos + 1
            while True:
                if i >= size:
                    return pos, publishes
                byte = buf[i]
                length |= (byte & 0x7F) << shift
                i += 1
                if byte < 0x80:
                    break
                shift += 7
                if shift > 21:
                    raise ProtocolError("MQTT: malformed remaining length")
            end = i + length
            if end > size:
                break
            kind = first >> 4
            if kind == PUBLISH:
                qos = (first >> 1) & 0x03
                cut = i + 2 + ((buf[i] << 8) | buf[i + 1])
                topic = buf[i + 2 : cut].decode("utf-8", "replace")
                if qos == 1:
                    pid = buf[cut] << 8 | buf[cut + 1]
                    publishes.append((topic, bytes(buf[cut + 2 : end]), pid, bool(first & 0x08)))
                elif qos == 0:
                    publishes.append((topic, bytes(buf[cut:end]), 0, False))
                else:
                    raise ProtocolError(f"MQTT: QoS {qos} publish on a QoS 1 subscription")
            else:
                self._control(kind, bytes(buf[i:end]))
            pos = end
        return pos, publishes

    def _control(self, kind: int, body: bytes) -> None:
        if kind in (PUBACK, SUBACK):
            waiter = self._waiting.pop(int.from_bytes(body[:2], "big"), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(body[2:])
        elif kind == CONNACK:
            if not self._connack.done():
                code = body[1] if len(body) > 1 else 255
                if code:
                    reason = _CONNACK_REFUSALS.get(code, f"code {code}")
                    self._connack.set_exception(TransportError(f"MQTT broker refused: {reason}"))
                else:
                    self._connack.set_result(bool(body[0] & 0x01))
        elif kind != PINGRESP:
            raise ProtocolError(f"MQTT: unexpected packet type {kind} from the broker")

    # --- requests -----------------------------------------------------------------------

    async def open(self, options: ConnectOptions, timeout_s: float) -> bool:
        """Send CONNECT and wait for the broker's answer; whether it kept a session."""
        self._write(connect_packet(options))
        try:
            async with asyncio.timeout(timeout_s):
                present = await self._first(self._connack)
        except TimeoutError as exc:
            raise TransportError(f"MQTT: no CONNACK within {timeout_s:g} s") from exc
        if options.keepalive_s:
            self._keepalive = asyncio.create_task(self._keep_alive(options.keepalive_s))
        return present

    async def subscribe(self, topic_filter: str, qos: int, timeout_s: float) -> int:
        """Subscribe; the QoS the broker granted (``TransportError`` if it refused)."""
        pid = self._packet_id()
        codes = await self._request(pid, subscribe_packet(topic_filter, qos, pid), timeout_s)
        error = refusal(topic_filter, codes)
        if error is not None:
            raise error
        return codes[0]

    def subscribe_later(self, topic_filter: str, qos: int) -> None:
        """Subscribe without waiting for the answer; a refusal ends the connection.

        For a kept session: its backlog follows the CONNACK at once and the SUBACK queues
        behind it, so waiting for the SUBACK would wait for the backlog to be read, which
        a full inbox stops (the broker already holds the session's subscription anyway).
        """
        pid = self._packet_id()
        waiter: asyncio.Future[bytes] = self._loop.create_future()
        self._waiting[pid] = waiter

        def answered(future: asyncio.Future[bytes]) -> None:
            if future.cancelled() or future.exception() is not None:
                return  # the connection ended: its own error says why
            error = refusal(topic_filter, future.result())
            if error is not None:
                self._fail(error)
                self._abort()

        waiter.add_done_callback(answered)
        self._write(subscribe_packet(topic_filter, qos, pid))

    async def publish(self, topic: str, payload: bytes, timeout_s: float) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK (reading the socket meanwhile,
        even past the sink's bound: the PUBACK queues behind the publishes sent to us)."""
        pid = self._packet_id()
        self._publishing += 1
        self._read_on()
        try:
            await self._request(pid, publish_packet(topic, payload, pid), timeout_s)
        finally:
            self._publishing -= 1
            if self._full:
                self.pause()

    def ack(self, packet_ids: Iterable[int]) -> None:
        """Acknowledge received QoS 1 publishes, in one write (``TransportError`` once the
        connection is gone: nothing was acknowledged)."""
        data = pubacks(packet_ids)
        if data:
            self._write(data)

    async def close(self, timeout_s: float = 2.0) -> None:
        """DISCONNECT (the broker then drops the will and keeps the session) and close.

        Waits (up to ``timeout_s``) for the broker to hang up: a broker that is still
        reading this connection's last acknowledgements when the same client connects again
        would hand the session over without them and deliver those messages once more.
        Publishes read meanwhile are not handed over: unacknowledged, they come again.
        """
        self._closing = True
        if self._keepalive is not None:
            self._keepalive.cancel()
        transport = self._transport
        if transport is not None:
            self._write(bytes([DISCONNECT << 4, 0]))
            self._read_on()  # to see the broker hang up
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._gone.wait()
            transport.close()
        if not self.closed.done():
            self.closed.set_result(None)

    # --- internals ----------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._transport is None:
            raise TransportError("MQTT connection is closed")
        self._transport.write(data)
        self._last_write = time.monotonic()

    def _packet_id(self) -> int:
        for pid in self._ids:
            if pid not in self._waiting:
                return pid
        raise AssertionError("unreachable: the id cycle never ends")

    async def _request(self, pid: int, data: bytes, timeout_s: float) -> bytes:
        waiter: asyncio.Future[bytes] = self._loop.create_future()
        self._waiting[pid] = waiter
        try:
            self._write(data)
            async with asyncio.timeout(timeout_s):
                return await self._first(waiter)
        except TimeoutError as exc:
            raise TransportError(f"MQTT: no answer to packet {pid} within {timeout_s} s") from exc
        finally:
            self._waiting.pop(pid, None)

    async def _first(self, waiter: asyncio.Future[_T]) -> _T:
        """``waiter``'s result, or the connection's error if it ends first."""
        waiting: set[asyncio.Future[Any]] = {waiter, self.closed}
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if waiter in done:
            return waiter.result()
        waiter.cancel()
        self.closed.result()
        raise TransportError("MQTT connection closed")

    async def _keep_alive(self, keepalive_s: int) -> None:
        """PINGREQ when nothing was sent for a while; give up on a broker that went quiet."""
        tick = max(keepalive_s / 4, 0.5)
        while self._transport is not None:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if now - self._last_read > keepalive_s * 1.5 and not self._paused:
                self._fail(TransportError(f"MQTT: broker silent for {keepalive_s * 1.5:.0f} s"))
                self._abort()
                return
            if now - self._last_write > keepalive_s / 2:
                self._write(bytes([PINGREQ << 4, 0]))

    def _fail(self, error: TransportError) -> None:
        if not self.closed.done():
            self.closed.set_exception(error)
            self.closed.exception()  # retrieved: the owner may already have stopped waiting
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_exception(error)
                waiter.exception()
        self._waiting.clear()
        if not self._connack.done():
            self._connack.set_exception(error)
            self._connack.exception()

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


async def open_wire(
    host: str, port: int, options: ConnectOptions, sink: PublishSink, timeout_s: float = 10.0
) -> tuple[MqttWire, bool]:
    """Connect to the broker; the protocol and whether the broker kept a session."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout_s):
            _, wire = await loop.create_connection(lambda: MqttWire(sink), host, port)
    except (OSError, TimeoutError) as exc:
        raise TransportError(f"MQTT broker {host}:{port}: {exc or 'connect timed out'}") from exc
    try:
        present = await wire.open(options, timeout_s)
    except BaseException:
        wire._abort()
        raise
    return wire, present
