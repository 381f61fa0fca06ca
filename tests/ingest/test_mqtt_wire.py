"""Ingest's own MQTT 3.1.1 client: the transport against the real broker, and the wire
protocol against a local peer that writes bytes the real broker never sends.

The local peer (``Peer``) is a real TCP server on loopback speaking raw MQTT; it plays a broker
that refuses, stays silent, sends a malformed packet or trickles a packet byte by byte.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Self

import aiomqtt
import pytest

from fleetwatch.settings import MqttSettings
from ingest.broker import make_client
from ingest.contract import TopicKind, TopicScheme
from ingest.transports import MqttTransport
from ingest.transports.base import Delivery
from ingest.transports.errors import AddressError, TransportError
from ingest.transports.mqtt_wire import (
    CONNACK,
    CONNECT,
    PINGREQ,
    PUBACK,
    ConnectOptions,
    ProtocolError,
    Publish,
    open_wire,
    packet,
    publish_packet,
)
from tests.ingest.conftest import forget_session

PANEL = "ESG_ALARM_0007"
CONNACK_OK = packet(CONNACK << 4, b"\x00\x00")
# asyncio's largest single socket read: how far past its bound an inbox can fill before the
# read that filled it pauses the connection.
READ_SIZE = 256 * 1024


# --- helpers ------------------------------------------------------------------------------


@pytest.fixture
async def session_id(mqtt_settings: MqttSettings) -> AsyncIterator[str]:
    """A client id of the test's own; its persistent broker session is dropped afterwards."""
    client_id = f"ingest-{uuid.uuid4().hex[:10]}"
    yield client_id
    await forget_session(mqtt_settings, client_id)


async def until(condition: Callable[[], bool], timeout_s: float) -> None:
    """Wait for ``condition``; what it reads (a backlog, a peer's record) has no event."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - no event to wait on
            await asyncio.sleep(0.01)


def receipt_id(delivery: Delivery) -> int:
    """The MQTT packet id in a delivery's receipt (0: QoS 0)."""
    receipt = delivery.receipt
    assert isinstance(receipt, tuple)
    assert len(receipt) == 2
    return int(receipt[1])


async def collect(
    transport: MqttTransport, count: int, *, address: str | None = None, timeout_s: float = 5.0
) -> list[Delivery]:
    """The next ``count`` deliveries (only those on ``address`` when given, passing over the
    others), taken in batches, none acknowledged."""
    got: list[Delivery] = []
    async with asyncio.timeout(timeout_s):
        while len(got) < count:
            batch = await transport.next_batch(count - len(got), 0.02)
            got += [d for d in batch if address is None or d.address == address]
    return got


async def settle(transport: MqttTransport) -> None:
    """Return once the broker has read every acknowledgement ``transport`` wrote so far.

    The broker answers a QoS 1 publish only after the packets sent before it on the same
    connection. The publish comes back to the transport (it reads its whole prefix) on the
    ``command`` kind, and is left unacknowledged.
    """
    await transport.send("SETTLE", TopicKind.COMMAND, b"")


async def publish_all(
    settings: MqttSettings, topic: str, payloads: list[bytes], qos: int = 1
) -> None:
    """Publish ``payloads`` in order as a device would; QoS 1 ones are on the broker after."""
    async with make_client(settings) as device:
        for payload in payloads:
            await device.publish(topic, payload, qos=qos)


async def next_message(client: aiomqtt.Client, timeout_s: float = 5.0) -> aiomqtt.Message:
    async with asyncio.timeout(timeout_s):
        async for message in client.messages:
            return message
    raise AssertionError("the message stream ended")


def connect_options(settings: MqttSettings, client_id: str, keepalive_s: int) -> ConnectOptions:
    password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    return ConnectOptions(
        client_id=client_id,
        username=settings.mqtt_username,
        password=password,
        keepalive_s=keepalive_s,
    )


class Sink:
    """Records what a wire hands over: one entry per socket read that held publishes."""

    def __init__(self) -> None:
        self.reads: list[list[Publish]] = []

    def __call__(self, publishes: list[Publish]) -> bool:
        self.reads.append(list(publishes))
        return True

    @property
    def publishes(self) -> list[Publish]:
        return [publish for read in self.reads for publish in read]


class Link:
    """The peer's side of one client connection: whole packets in, raw bytes out."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Peer
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._peer = peer

    async def read(self) -> tuple[int, bytes]:
        """One packet the client sent (first byte, body); recorded in ``peer.received``."""
        first = (await self._reader.readexactly(1))[0]
        length, shift = 0, 0
        while True:
            byte = (await self._reader.readexactly(1))[0]
            length |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        received = (first, await self._reader.readexactly(length))
        self._peer.received.append(received)
        return received

    async def send(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def listen(self) -> None:
        """Read (and record) what the client sends, answering nothing, until it hangs up."""
        while True:
            await self.read()


Script = Callable[[Link], Awaitable[None]]


class Peer:
    """A broker stand-in on loopback: each connection runs ``script``; ``hung_up`` is set
    once a client closed its connection."""

    def __init__(self, script: Script) -> None:
        self._script = script
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.received: list[tuple[int, bytes]] = []
        self.hung_up = asyncio.Event()
        self.port = 0

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.transport.abort()  # each script then ends on the lost connection
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        try:
            await self._script(Link(reader, writer, self))
        except (asyncio.IncompleteReadError, ConnectionError):
            self.hung_up.set()


async def answer_connect(link: Link) -> None:
    """Read CONNECT, accept it, then listen."""
    await link.read()
    await link.send(CONNACK_OK)
    await link.listen()


# --- the transport against the real broker --------------------------------------------------


async def test_qos1_messages_arrive_in_order_with_receipts_and_qos0_is_not_acknowledged(
    mqtt_settings: MqttSettings, session_id: str
) -> None:
    """QoS 1 publishes arrive in order with their topic, payload and a receipt, and ``ack``
    counts them; a QoS 0 publish arrives with nothing to acknowledge."""
    scheme = TopicScheme(mqtt_settings.topic_prefix)
    sent = [(scheme.topic(f"ESG_ALARM_{n:04d}", TopicKind.HEARTBEAT), b"m%d" % n) for n in range(5)]
    transport = MqttTransport(mqtt_settings, client_id=session_id, name="mqtt-a")
    async with make_client(mqtt_settings) as device, transport:
        for topic, payload in sent:
            await device.publish(topic, payload, qos=1)
        batch = await collect(transport, len(sent))
        assert [(d.address, d.payload) for d in batch] == sent
        assert {d.transport for d in batch} == {"mqtt-a"}
        assert all(d.received_at.tzinfo is not None for d in batch)
        ids = [receipt_id(d) for d in batch]
        assert 0 not in ids
        assert len(set(ids)) == len(ids)
        assert transport.ack(batch) == len(sent)

        await device.publish(sent[0][0], b"best effort", qos=0)
        [once] = await collect(transport, 1)
        assert (once.address, once.payload, receipt_id(once)) == (sent[0][0], b"best effort", 0)
        assert transport.ack([once]) == 0
        assert transport.backlog == 0


async def test_unacknowledged_messages_are_redelivered_on_the_same_session(
    mqtt_settings: MqttSettings, session_id: str
) -> None:
    """What was received but not acknowledged comes again on the next connection, with what
    was published while the transport was away (sent right behind the CONNACK); what was
    acknowledged does not; receipts of an earlier connection acknowledge nothing."""
    topic = TopicScheme(mqtt_settings.topic_prefix).topic(PANEL, TopicKind.ALARM)
    transport = MqttTransport(mqtt_settings, client_id=session_id)
    async with transport:
        await publish_all(mqtt_settings, topic, [b"m0", b"m1", b"m2"])
        first = await collect(transport, 3)
        assert [d.payload for d in first] == [b"m0", b"m1", b"m2"]
        assert transport.ack(first[:1]) == 1
        await settle(transport)
    assert not transport.connected
    await publish_all(mqtt_settings, topic, [b"m3", b"m4"])

    async with transport:
        again = await collect(transport, 4, address=topic)
        assert [d.payload for d in again] == [b"m1", b"m2", b"m3", b"m4"]
        assert transport.ack(first) == 0
        assert transport.ack(again) == 4
        await settle(transport)

    async with transport:
        await publish_all(mqtt_settings, topic, [b"marker"])
        # Anything redelivered would come right behind the CONNACK, before the marker.
        marker = await collect(transport, 1, address=topic)
        assert [d.payload for d in marker] == [b"marker"]
        assert transport.ack(marker) == 1


async def test_acknowledgements_written_just_before_leaving_survive_an_immediate_reconnect(
    mqtt_settings: MqttSettings, session_id: str
) -> None:
    """Messages acknowledged right before the transport exits are not delivered again when
    it is entered again at once."""
    count = 1000
    topic = TopicScheme(mqtt_settings.topic_prefix).topic(PANEL, TopicKind.HEARTBEAT)
    transport = MqttTransport(mqtt_settings, client_id=session_id)
    async with transport:
        await publish_all(mqtt_settings, topic, [b"%d" % n for n in range(count)])
        assert transport.ack(await collect(transport, count)) == count
    async with transport:
        await publish_all(mqtt_settings, topic, [b"marker"])
        again: list[bytes] = []
        async with asyncio.timeout(10):
            while b"marker" not in again:
                batch = await transport.next_batch(count, 0.02)
                transport.ack(batch)
                again += [d.payload for d in batch]
    assert again == [b"marker"], (
        f"{len(again) - 1} of {count} acknowledged messages delivered again: the new "
        "connection took the session over before the broker read the old one's PUBACKs"
    )


async def test_a_kept_backlog_larger_than_the_inbox_arrives_on_reconnect(
    mqtt_settings: MqttSettings, session_id: str
) -> None:
    """A session's backlog bigger than the inbox, sent right behind the CONNACK, does not
    keep the transport from connecting, and all of it arrives in order."""
    topic = TopicScheme(mqtt_settings.topic_prefix).topic(PANEL, TopicKind.HEARTBEAT)
    transport = MqttTransport(mqtt_settings, client_id=session_id, queue_size=4)
    async with transport:
        pass  # the session and its subscription now exist on the broker
    payloads = [b"b%d" % n for n in range(12)]
    await publish_all(mqtt_settings, topic, payloads)

    entering = asyncio.create_task(transport.__aenter__())
    try:
        done, _ = await asyncio.wait({entering}, timeout=3)
        assert entering in done, (
            "entering stalled: the backlog behind the CONNACK filled the inbox and paused "
            "reading, and the SUBACK queued behind that backlog cannot be read before a "
            "batch is taken"
        )
        entering.result()
        got: list[Delivery] = []
        async with asyncio.timeout(5):
            while len(got) < len(payloads):
                batch = await transport.next_batch(3, 0.02)
                transport.ack(batch)
                got += batch
        assert [d.payload for d in got] == payloads
    finally:
        entering.cancel()
        await asyncio.gather(entering, return_exceptions=True)
        await transport.__aexit__(None, None, None)


async def test_a_full_inbox_pauses_reading_until_a_batch_is_taken(
    mqtt_settings: MqttSettings, session_id: str
) -> None:
    """With a small inbox the backlog stops growing at its bound (plus at most one socket
    read), reading resumes as batches are taken, and every message arrives once, in order."""
    queue_size, count = 4, 60
    payload_size = 32 * 1024
    bound = queue_size - 1 + READ_SIZE // payload_size + 1
    topic = TopicScheme(mqtt_settings.topic_prefix).topic(PANEL, TopicKind.TELEMETRY)
    payloads = [n.to_bytes(2, "big") * (payload_size // 2) for n in range(count)]
    transport = MqttTransport(mqtt_settings, client_id=session_id, queue_size=queue_size)
    async with transport:
        await publish_all(mqtt_settings, topic, payloads)
        await until(lambda: transport.backlog >= queue_size, timeout_s=5)
        peak = transport.backlog
        for _ in range(15):  # the broker holds all of them: none may come in while paused
            await asyncio.sleep(0.02)
            peak = max(peak, transport.backlog)
        assert peak <= bound, f"{peak} deliveries held by an inbox of {queue_size}"

        got: list[Delivery] = []
        async with asyncio.timeout(10):
            while len(got) < count:
                batch = await transport.next_batch(3, 0.01)
                peak = max(peak, transport.backlog)
                transport.ack(batch)
                got += batch
        assert peak <= bound
        assert [d.payload[:2] for d in got] == [n.to_bytes(2, "big") for n in range(count)]
        assert [d.payload for d in got] == payloads

        await publish_all(mqtt_settings, topic, [b"marker"])
        assert [d.payload for d in await collect(transport, 1)] == [b"marker"]
        assert transport.backlog == 0


async def test_send_completes_while_the_inbox_is_full(
    mqtt_settings: MqttSettings, session_id: str
) -> None:
    """A command sent while intake is paused on a full inbox is published and ``send``
    returns, rather than waiting for a PUBACK nothing reads."""
    scheme = TopicScheme(mqtt_settings.topic_prefix)
    command = scheme.topic(PANEL, TopicKind.COMMAND)
    transport = MqttTransport(mqtt_settings, client_id=session_id, queue_size=2)
    async with make_client(mqtt_settings) as spy, transport:
        await spy.subscribe(command, qos=1)
        await publish_all(mqtt_settings, scheme.topic(PANEL, TopicKind.HEARTBEAT), [b"h"] * 6)
        await until(lambda: transport.backlog >= 2, timeout_s=5)

        sending = asyncio.create_task(transport.send(PANEL, TopicKind.COMMAND, b"reboot"))
        try:
            message = await next_message(spy)
            assert (str(message.topic), message.payload) == (command, b"reboot")
            done, _ = await asyncio.wait({sending}, timeout=3)
            assert sending in done, (
                "send is stuck although the broker delivered the command: the PUBACK it "
                "waits for is not read while the inbox is full"
            )
            sending.result()
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)


async def test_send_publishes_at_qos1_and_needs_a_connection(
    mqtt_settings: MqttSettings, session_id: str
) -> None:
    """``send`` publishes to the device's topic of that kind at QoS 1; it raises
    ``TransportError`` while the transport is not connected and ``AddressError`` for a name
    that cannot be a topic level."""
    command = TopicScheme(mqtt_settings.topic_prefix).topic(PANEL, TopicKind.COMMAND)
    transport = MqttTransport(mqtt_settings, client_id=session_id)
    with pytest.raises(TransportError, match="not connected"):
        await transport.send(PANEL, TopicKind.COMMAND, b"early")
    async with make_client(mqtt_settings) as spy:
        await spy.subscribe(command, qos=1)
        async with transport:
            await transport.send(PANEL, TopicKind.COMMAND, b"reboot")
            message = await next_message(spy)
            assert (str(message.topic), message.payload, message.qos) == (command, b"reboot", 1)
            # The transport reads its whole prefix: its own command comes back to it too.
            [echo] = await collect(transport, 1)
            assert (echo.address, echo.payload) == (command, b"reboot")
            assert receipt_id(echo) != 0
            with pytest.raises(AddressError):
                await transport.send("no/such/panel", TopicKind.COMMAND, b"")
        with pytest.raises(TransportError, match="not connected"):
            await transport.send(PANEL, TopicKind.COMMAND, b"late")


async def test_ack_after_the_connection_was_lost_acknowledges_nothing(
    mqtt_settings: MqttSettings, session_id: str
) -> None:
    """Once the broker dropped the connection (another client took the session over),
    ``ack`` of its deliveries reports 0: the broker hands them to the session's next
    connection."""
    topic = TopicScheme(mqtt_settings.topic_prefix).topic(PANEL, TopicKind.STATUS)
    transport = MqttTransport(mqtt_settings, client_id=session_id)
    async with transport:
        await publish_all(mqtt_settings, topic, [b"s0", b"s1"])
        batch = await collect(transport, 2)
        async with make_client(mqtt_settings, client_id=session_id, clean_session=False) as heir:
            with pytest.raises(TransportError):
                async with asyncio.timeout(5):
                    await transport.next_batch(1, 0.1)
            acknowledged = transport.ack(batch)
            redelivered = [(await next_message(heir)).payload for _ in batch]
    assert redelivered == [b"s0", b"s1"]
    assert acknowledged == 0, f"ack reported {acknowledged} acknowledged on a lost connection"


# --- the wire against a real broker -------------------------------------------------------


async def test_an_idle_connection_with_keepalive_1_stays_open(mqtt_settings: MqttSettings) -> None:
    """With a 1 s keep-alive and nothing else to send, PINGREQ/PINGRESP keep the broker and
    the client from dropping an idle connection; it still works after 3 s."""
    topic = TopicScheme(mqtt_settings.topic_prefix).topic(PANEL, TopicKind.HEARTBEAT)
    sink = Sink()
    options = connect_options(mqtt_settings, f"idle-{uuid.uuid4().hex[:10]}", keepalive_s=1)
    wire, present = await open_wire(
        mqtt_settings.mqtt_host, mqtt_settings.mqtt_port, options, sink, 5
    )
    try:
        assert present is False  # a clean session
        assert await wire.subscribe(topic, 1, 5) == 1
        done, _ = await asyncio.wait({wire.closed}, timeout=3)
        assert not done, f"idle connection closed: {wire.closed.exception()}"
        await wire.publish(topic, b"still here", 5)
        await until(lambda: bool(sink.publishes), timeout_s=5)
        [(got_topic, payload, packet_id, _)] = sink.publishes
        assert (got_topic, payload) == (topic, b"still here")
        assert packet_id != 0
        wire.ack([packet_id])
    finally:
        await wire.close()
    assert wire.closed.done()
    assert wire.closed.result() is None


# --- the wire against a misbehaving peer --------------------------------------------------


async def test_a_refused_connack_raises_with_its_reason() -> None:
    """CONNACK code 5 fails the connect with ``TransportError`` saying "not authorised"; the
    CONNECT sent carries the id, keep-alive, clean-session flag and credentials."""

    async def refuse(link: Link) -> None:
        await link.read()
        await link.send(packet(CONNACK << 4, b"\x00\x05"))
        await link.listen()

    options = ConnectOptions(
        client_id="panel", username="u", password="pw", clean_session=True, keepalive_s=30
    )
    async with Peer(refuse) as peer:
        with pytest.raises(TransportError, match="refused: not authorised"):
            await open_wire("127.0.0.1", peer.port, options, Sink(), 2)
        async with asyncio.timeout(2):
            await peer.hung_up.wait()
    assert peer.received == [
        (
            CONNECT << 4,
            b"\x00\x04MQTT\x04\xc2\x00\x1e" + b"\x00\x05panel" + b"\x00\x01u" + b"\x00\x02pw",
        )
    ]


async def test_no_connack_within_the_timeout_raises() -> None:
    """A peer that accepts the TCP connection but never answers CONNECT fails the connect
    with ``TransportError`` once the timeout passed, and the socket is closed."""

    async def mute(link: Link) -> None:
        await link.listen()

    loop = asyncio.get_running_loop()
    async with Peer(mute) as peer:
        started = loop.time()
        with pytest.raises(TransportError, match="no CONNACK within 1 s"):
            await open_wire("127.0.0.1", peer.port, ConnectOptions(client_id="c"), Sink(), 1.0)
        assert 0.9 <= loop.time() - started < 3
        async with asyncio.timeout(2):
            await peer.hung_up.wait()
    assert [first for first, _ in peer.received] == [CONNECT << 4]


async def test_a_malformed_remaining_length_ends_the_connection_as_a_protocol_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A packet whose remaining length runs on for five bytes, after a good CONNACK, makes
    ``closed`` fail with ``ProtocolError``, is logged, and the client closes the socket."""

    async def malformed(link: Link) -> None:
        await link.read()
        await link.send(CONNACK_OK)
        await link.send(b"\x30\xff\xff\xff\xff\x01")
        await link.listen()

    sink = Sink()
    async with Peer(malformed) as peer:
        wire, _ = await open_wire("127.0.0.1", peer.port, ConnectOptions(client_id="c"), sink, 2)
        with pytest.raises(ProtocolError, match="malformed remaining length"):
            async with asyncio.timeout(2):
                await wire.closed
        async with asyncio.timeout(2):
            await peer.hung_up.wait()
        await wire.close()
    assert sink.reads == []
    assert "malformed remaining length" in caplog.text


async def test_a_packet_trickled_byte_by_byte_is_parsed_once() -> None:
    """A QoS 1 PUBLISH (two-byte remaining length) written one byte at a time is handed to
    the sink once, whole, before the packet written after it (flagged DUP, which the sink
    is told); their PUBACKs reach the peer."""
    topic, payload = "fleet/ESG_ALARM_0001/heartbeat", bytes(range(200))
    trickled = publish_packet(topic, payload, 7)
    assert trickled[1] & 0x80  # the remaining length itself is split too

    async def trickle(link: Link) -> None:
        await link.read()
        await link.send(CONNACK_OK)
        for byte in trickled:
            await link.send(bytes([byte]))
            await asyncio.sleep(0.002)
        again = bytearray(publish_packet(topic, b"next", 8))
        again[0] |= 0x08  # DUP: the broker may have sent it before
        await link.send(bytes(again))
        await link.listen()

    sink = Sink()
    async with Peer(trickle) as peer:
        wire, _ = await open_wire("127.0.0.1", peer.port, ConnectOptions(client_id="c"), sink, 2)
        try:
            await until(lambda: len(sink.publishes) >= 2, timeout_s=5)
            assert sink.publishes == [(topic, payload, 7, False), (topic, b"next", 8, True)]
            assert not wire.closed.done()
            wire.ack([7, 8])
            acks = [(PUBACK << 4, b"\x00\x07"), (PUBACK << 4, b"\x00\x08")]
            await until(lambda: peer.received[1:] == acks, timeout_s=2)
        finally:
            await wire.close()


async def test_a_broker_that_stops_answering_pings_is_declared_lost() -> None:
    """With a 1 s keep-alive the client sends PINGREQ on an idle connection, and when no
    answer (nothing at all) comes back ``closed`` fails with ``TransportError`` within a few
    seconds."""
    loop = asyncio.get_running_loop()
    options = ConnectOptions(client_id="c", keepalive_s=1)
    async with Peer(answer_connect) as peer:
        wire, _ = await open_wire("127.0.0.1", peer.port, options, Sink(), 2)
        started = loop.time()
        with pytest.raises(TransportError, match="silent"):
            async with asyncio.timeout(5):
                await wire.closed
        assert loop.time() - started >= 1.0
        assert (PINGREQ << 4, b"") in peer.received
        async with asyncio.timeout(2):
            await peer.hung_up.wait()
        await wire.close()
