"""Publishing a prepared stream as pre-encoded MQTT 3.1.1 packets over a plain socket.

The paho publisher costs about 80 µs of CPU per message, on the same two cores as ingest,
the broker and the stores: more than ingest itself may spend, so an unpaced run measured the
publisher as much as ingest. This one does the per-message work before publishing starts:
``prepare`` encodes every QoS 1 PUBLISH, packet ids included, into one buffer, and the
PUBACKs the broker must answer with into another. Publishing then only moves bytes: as many
packets as the window (and the pace) allows go out in one ``sendall`` of a slice of the
buffer, and the PUBACKs that arrived are checked in bulk against the expected ones, one
comparison per read. A broker acknowledges QoS 1 publishes of one connection in the order
it received them (MQTT 3.1.1, 4.6), so anything else (a PUBACK out of order, a packet id
never sent, another packet) is a ``PublishError``: the acknowledged count is exact.

While waiting for acknowledgements the socket's receive low-water mark (``SO_RCVLOWAT``)
is set to the PUBACKs needed before the next write, so the publisher wakes once per chunk
rather than once per PUBACK.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import time
from array import array
from collections.abc import Sequence

from benchmarks.publisher import CONNECT_TIMEOUT_S, DRAIN_TIMEOUT_S, PublishError, PublishResult
from benchmarks.stream import Outbound, Probe
from fleetwatch.settings import MqttSettings
from ingest.transports.mqtt_wire import ConnectOptions, connect_packet, publish_packet

logger = logging.getLogger(__name__)

MAX_PACKET_ID = 65_535  # packet ids run 1..65535, then start again
PUBACK_SIZE = 4  # 0x40, remaining length 2, packet id
CONNACK = b"\x20\x02"
DISCONNECT = b"\xe0\x00"
KEEPALIVE_S = 60  # the broker drops a silent client after 1.5 times this
PACE_TICK_S = 0.002  # a paced publisher writes what is due at most this often
RECV_BYTES = 1 << 18
MAX_LOWAT = 16_384  # bytes; Linux caps the low-water mark at the receive buffer's size
PROGRESS_EVERY = 50_000


def packet_id(index: int) -> int:
    """The packet id of the ``index``-th message of the stream."""
    return index % MAX_PACKET_ID + 1


class WirePublisher:
    """Publishes a list of prepared messages in order over one connection at QoS 1, with at
    most ``window`` unacknowledged, unpaced or at ``rate`` msg/s.

    The same interface as ``StreamPublisher``: ``prepare`` (optional, encodes the stream so
    that ``run`` spends nothing on it), ``run``, and ``result``, updated as it goes (another
    thread may read the counts).
    """

    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        *,
        window: int = 1000,
        rate: float = 0.0,
    ) -> None:
        if not 1 <= window < MAX_PACKET_ID:
            raise ValueError(f"window must be within [1, {MAX_PACKET_ID - 1}]: packet ids repeat")
        if rate < 0:
            raise ValueError("rate must be >= 0 (0: as fast as possible)")
        self._settings = settings
        self._client_id = client_id
        self._window = window
        self._rate = rate
        # Unpaced, write only once a quarter of the window is free: large writes, few wakes.
        self._chunk = max(1, window // 4)
        self._prepared: Sequence[Outbound] | None = None
        self._packets = b""
        self._offsets = array("Q")  # message i is _packets[_offsets[i]:_offsets[i + 1]]
        self._pubacks = b""  # the PUBACKs expected, in order
        self._probes: list[tuple[int, Probe]] = []  # (message index, probe)
        self.result = PublishResult()

    def prepare(self, messages: Sequence[Outbound]) -> None:
        """Encode every message as a QoS 1 PUBLISH, and the PUBACK each must get."""
        if self._prepared is messages:
            return
        started = time.perf_counter()
        packets, offsets, position = [], array("Q", [0]), 0
        for index, message in enumerate(messages):
            data = publish_packet(message.topic, message.payload, packet_id(index))
            packets.append(data)
            position += len(data)
            offsets.append(position)
        self._packets = b"".join(packets)
        self._offsets = offsets
        self._pubacks = b"".join(
            b"\x40\x02" + packet_id(index).to_bytes(2, "big") for index in range(len(messages))
        )
        self._probes = [
            (index, message.probe) for index, message in enumerate(messages) if message.probe
        ]
        self._prepared = messages
        logger.info(
            "encoded %d packets (%.1f MB) in %.2fs",
            len(messages),
            len(self._packets) / 1e6,
            time.perf_counter() - started,
        )

    def run(self, messages: Sequence[Outbound]) -> PublishResult:
        """Publish every message and wait for the broker's acknowledgements (blocking)."""
        self.prepare(messages)
        sock = self._connect()
        try:
            self._publish_all(sock, len(messages))
        except OSError as exc:
            raise PublishError(f"publishing failed: {exc}") from exc
        finally:
            with contextlib.suppress(OSError):  # gone already: nothing left to end
                sock.sendall(DISCONNECT)
            sock.close()
        return self.result

    def _connect(self) -> socket.socket:
        settings = self._settings
        password = settings.mqtt_password
        options = ConnectOptions(
            client_id=self._client_id,
            username=settings.mqtt_username,
            password=password.get_secret_value() if password else None,
            clean_session=True,
            keepalive_s=KEEPALIVE_S,
        )
        address = (settings.mqtt_host, settings.mqtt_port)
        try:
            sock = socket.create_connection(address, timeout=CONNECT_TIMEOUT_S)
        except OSError as exc:
            raise PublishError(f"publisher cannot reach the broker: {exc}") from exc
        try:
            # Paced, a few packets go out at a time: Nagle would hold them back.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(connect_packet(options))
            answer = b""
            while len(answer) < 4:
                data = sock.recv(4 - len(answer))
                if not data:
                    raise PublishError("broker closed the connection before CONNACK")
                answer += data
        except OSError as exc:
            sock.close()
            raise PublishError(f"publisher connection failed: {exc}") from exc
        if answer[:2] != CONNACK or answer[3] != 0:
            sock.close()
            raise PublishError(f"broker refused the publisher: CONNACK {answer.hex()}")
        sock.settimeout(DRAIN_TIMEOUT_S)  # bounds a sendall the broker does not read
        return sock

    def _publish_all(self, sock: socket.socket, total: int) -> None:
        flow = _Flow(self, sock, total)
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ)
            self.result.started = time.time()
            flow.start = flow.last_ack = flow.next_write = time.monotonic()
            while flow.acked < total:
                now = time.monotonic()
                due = flow.due(now)
                if flow.ready(due, now):
                    flow.write(due, now)
                needed, timeout = flow.wait_for(now)
                flow.set_lowat(needed)
                if selector.select(max(timeout, 0.0)):
                    flow.read()
                flow.check_stall()
            self.result.finished = time.time()


class _Flow:
    """One run's sending and acknowledging state (``WirePublisher._publish_all``)."""

    def __init__(self, publisher: WirePublisher, sock: socket.socket, total: int) -> None:
        self.result = publisher.result
        self.sock = sock
        self.total = total
        self.window, self.rate, self.chunk = publisher._window, publisher._rate, publisher._chunk
        self.step = 1 if self.rate else self.chunk  # room the next write waits for
        self.packets, self.offsets = memoryview(publisher._packets), publisher._offsets
        self.pubacks = memoryview(publisher._pubacks)
        self.probes, self.next_probe = publisher._probes, 0
        self.received = bytearray()  # the start of a PUBACK not yet whole
        self.lowat = 1
        self.sent = self.acked = 0
        self.start = self.last_ack = self.next_write = 0.0
        self.next_log = PROGRESS_EVERY

    def due(self, now: float) -> int:
        """How many messages may have been sent by ``now``: the window's and the pace's
        limit."""
        due = min(self.total, self.acked + self.window)
        if self.rate:
            due = min(due, int((now - self.start) * self.rate) + 1)
        return due

    def ready(self, due: int, now: float) -> bool:
        """Whether to write now: paced, at most once a tick; unpaced, once a chunk is due."""
        if self.rate:
            return due > self.sent and now >= self.next_write
        return due - self.sent >= self.chunk or (due == self.total > self.sent)

    def write(self, due: int, now: float) -> None:
        """Send the messages up to ``due`` in one write; their probes' publish time is now."""
        probes, stamp = self.probes, time.time()
        while self.next_probe < len(probes) and probes[self.next_probe][0] < due:
            self.result.probes.append((probes[self.next_probe][1], stamp))
            self.next_probe += 1
        self.sock.sendall(self.packets[self.offsets[self.sent] : self.offsets[due]])
        self.sent = self.result.sent = due
        self.next_write = now + PACE_TICK_S
        if self.sent >= self.next_log:
            logger.info("published %d of %d", self.sent, self.total)
            self.next_log += PROGRESS_EVERY

    def wait_for(self, now: float) -> tuple[int, float]:
        """The PUBACKs the next write needs (or all the rest, at the end) and how long to wait
        for them. Paced with room in the window: those of what was sent, until the next tick
        at the latest."""
        sent, acked, total = self.sent, self.acked, self.total
        if sent < total and self.rate and sent - acked < self.window:
            tick = max(self.next_write, self.start + sent / self.rate)
            return max(1, sent - acked), tick - now
        if sent < total:
            return sent + min(self.step, total - sent) - self.window - acked, DRAIN_TIMEOUT_S
        return total - acked, DRAIN_TIMEOUT_S

    def set_lowat(self, needed: int) -> None:
        """Wake the reader only once ``needed`` PUBACKs can be read (part of the next may be
        in ``received`` already)."""
        want = max(1, min(needed * PUBACK_SIZE - len(self.received), MAX_LOWAT))
        if want != self.lowat:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, want)
            self.lowat = want

    def read(self) -> None:
        """Take the PUBACKs that arrived: each must be the next one expected."""
        data = self.sock.recv(RECV_BYTES)
        if not data:
            raise PublishError(
                f"broker closed the connection ({self.acked} of {self.total} acknowledged)"
            )
        received = self.received
        received += data
        whole = len(received) // PUBACK_SIZE * PUBACK_SIZE
        if not whole:
            return
        begin = self.acked * PUBACK_SIZE
        expected = self.pubacks[begin : begin + whole]
        if expected != received[:whole]:
            raise PublishError(_unexpected(received[:whole], expected, self.acked))
        del received[:whole]
        self.acked += whole // PUBACK_SIZE
        self.result.acknowledged = self.acked
        self.last_ack = time.monotonic()

    def check_stall(self) -> None:
        """Give up on a broker that stopped acknowledging."""
        if self.sent > self.acked and time.monotonic() - self.last_ack > DRAIN_TIMEOUT_S:
            raise PublishError(
                f"broker acknowledged {self.acked} of {self.sent} sent and nothing more "
                f"for {DRAIN_TIMEOUT_S:.0f}s"
            )


def _unexpected(got: bytes | bytearray, expected: memoryview, acked: int) -> str:
    """What the broker sent instead of the PUBACKs expected after ``acked`` of them."""
    for offset in range(0, len(got), PUBACK_SIZE):
        packet = bytes(got[offset : offset + PUBACK_SIZE])
        if packet != expected[offset : offset + PUBACK_SIZE]:
            index = acked + offset // PUBACK_SIZE
            return (
                f"broker sent {packet.hex()} where the PUBACK of message {index} "
                f"(packet id {packet_id(index)}) was expected"
            )
    return "broker acknowledged more messages than were sent"
