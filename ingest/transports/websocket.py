"""WebSocket transport: devices (seed 003) hold a socket each; ingest answers on it.

The ASGI server accepts a device's socket, authenticates it (``access.devices``) and hands
it to ``converse``, which reads its frames into the inbox until the socket ends. A frame is
acknowledged to the device (an ``ack`` frame with its id) only after the batch it was in
committed, so a device that resends what was not acknowledged after a reconnect loses
nothing; a resent id is recognised by the pipeline and taken once. The end of a socket is a
delivery of its own (``ingest.frames.notice_address``), so the device goes offline in the
same pipeline as everything else: ``disconnected`` when it closed, ``timeout`` when it went
silent past ``idle_timeout_s`` and the server closed it.

Commands go out on the device's socket (``send``); a device without a socket here is
unreachable, and its command waits. Each socket has its own writer task and bounded outbox,
so a slow device cannot hold up acknowledgements to the others. A device sending faster
than its rate is told to resend later (an ``error`` frame, no ``ack``), not taken: it cannot
crowd out the rest of the fleet.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Final, Protocol, Self

from ingest.contract import TopicKind
from ingest.decoding import DecodeLimits
from ingest.frames import (
    FrameDecoder,
    disconnect_frame,
    frame_address,
    notice_address,
    read_head,
)
from ingest.transports.base import Delivery
from ingest.transports.errors import DeviceUnreachableError, TransportError
from ingest.transports.inbox import Inbox

logger = logging.getLogger(__name__)

# Close codes (RFC 6455 and the private 4000-4999 range).
GOING_AWAY: Final = 1001
POLICY: Final = 1008
RESTARTING: Final = 1012
TRY_LATER: Final = 1013
REPLACED: Final = 4000
BAD_HELLO: Final = 4400


class Peer(Protocol):
    """One device's socket as the server library gives it."""

    async def receive(self) -> bytes | None:
        """The next frame's bytes (text frames UTF-8 encoded); None once the socket closed."""
        ...

    async def send_text(self, text: str) -> None:
        """Send one text frame."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close the socket (no error if it is closed already)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class WebSocketOptions:
    """Limits of the device sockets."""

    idle_timeout_s: float = 90.0  # no frame for this long: closed, the device timed out
    hello_timeout_s: float = 10.0  # the first frame (with the device type) must come by then
    rate_per_s: float = 20.0  # frames a device may send per second, on average
    burst: int = 200  # and at once (a reconnecting device resending its backlog)
    outbox_frames: int = 1000  # frames waiting to go out to one device before it is dropped

    def __post_init__(self) -> None:
        if min(self.idle_timeout_s, self.hello_timeout_s, self.rate_per_s) <= 0:
            raise ValueError("timeouts and the rate must be positive")
        if self.burst < 1 or self.outbox_frames < 1:
            raise ValueError("burst and outbox_frames must be at least 1")


@dataclass(eq=False, slots=True)
class Session:
    """One device's socket while it is open."""

    device: str
    device_type: str
    peer: Peer
    number: int
    burst: int
    outbox: asyncio.Queue[str] = field(init=False)
    writer: asyncio.Task[None] | None = None
    closing: asyncio.Future[None] | None = None
    open: bool = True
    tokens: float = 0.0
    refilled: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.outbox = asyncio.Queue()
        self.tokens = float(self.burst)

    def take(self, rate_per_s: float) -> bool:
        """Whether one more frame fits the device's rate (a token bucket)."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.refilled) * rate_per_s)
        self.refilled = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass(frozen=True, slots=True)
class WsReceipt:
    """The socket a frame came on and the id the device gave it."""

    session: Session
    frame_id: str | None


class WebSocketTransport:
    """Device sockets feeding one inbox; ``converse`` runs one socket to its end."""

    def __init__(
        self,
        options: WebSocketOptions | None = None,
        *,
        name: str = "websocket",
        inbox_size: int = 20_000,
    ) -> None:
        self.name = name
        self.options = options or WebSocketOptions()
        self._inbox = Inbox(name, inbox_size)
        self._sessions: dict[str, Session] = {}
        self._numbers = 0
        self._open = False

    @property
    def connected(self) -> bool:
        return self._open

    @property
    def devices(self) -> int:
        """Devices with an open socket now."""
        return len(self._sessions)

    async def __aenter__(self) -> Self:
        self._inbox.open()
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Ingest stops taking frames: every device is told to come back later, and resends
        # what was not acknowledged when it does.
        self._open = False
        self._inbox.close()
        sessions = list(self._sessions.values())
        self._sessions.clear()
        await asyncio.gather(
            *(self._end(s, RESTARTING, "server restarting") for s in sessions),
            return_exceptions=True,
        )

    def decoder(self, limits: DecodeLimits) -> FrameDecoder:
        """The decoder of seed 003's frames."""
        return FrameDecoder(limits)

    async def next_batch(self, max_size: int, max_wait_s: float) -> list[Delivery]:
        if not self._open:
            raise TransportError("WebSocket transport is not serving")
        return await self._inbox.next_batch(max_size, max_wait_s)

    async def converse(self, device: str, device_type: str, peer: Peer) -> str:
        """Serve one authenticated device's socket until it ends; returns why it ended
        (closed, timeout, replaced, refused, restarting)."""
        if not self._open:
            await peer.close(TRY_LATER, "ingest is not running; try again later")
            return "refused"
        first = await self._hello(device, device_type, peer)
        if first is None:
            return "refused"
        self._numbers += 1
        session = Session(device, device_type, peer, self._numbers, self.options.burst)
        session.writer = asyncio.create_task(self._write(session), name=f"ws {device} writer")
        replaced = self._sessions.get(device)
        self._sessions[device] = session
        if replaced is not None:
            await self._end(replaced, REPLACED, "replaced by a newer connection")
        reason, code = "closed", None
        try:
            await self._take(session, first)
            reason, code = await self._read(session)
        finally:
            await self._detach(session, reason, code)
        return reason

    async def _hello(self, device: str, device_type: str, peer: Peer) -> bytes | None:
        """The first frame, if it names the device's type; else the socket is closed."""
        try:
            async with asyncio.timeout(self.options.hello_timeout_s):
                first = await peer.receive()
        except TimeoutError:
            first = b""
        if first is None:
            return None
        announced = read_head(first).device_type
        if announced != device_type:
            said = "no device_type" if announced is None else f"device_type {announced[:40]!r}"
            await self._refuse(
                peer, f"the first frame must say device_type {device_type!r}, not {said}"
            )
            return None
        return first

    async def _refuse(self, peer: Peer, message: str) -> None:
        try:
            await peer.send_text(json.dumps({"type": "error", "error": message}))
        finally:
            await peer.close(BAD_HELLO, message[:120])

    async def _read(self, session: Session) -> tuple[str, int | None]:
        """Take frames until the socket ends or goes silent; why it ended."""
        while session.open:
            try:
                async with asyncio.timeout(self.options.idle_timeout_s):
                    frame = await session.peer.receive()
            except TimeoutError:
                await self._end(session, GOING_AWAY, "silent too long")
                return "timeout", GOING_AWAY
            if frame is None:
                return ("closed", None) if session.open else ("replaced", REPLACED)
            await self._take(session, frame)
        return "replaced", REPLACED

    async def _take(self, session: Session, frame: bytes) -> None:
        head = read_head(frame)
        if not session.take(self.options.rate_per_s):
            # Not taken and not acknowledged: the device keeps it and sends it again.
            self._queue(session, _error(head.frame_id, "rate_limited: resend later"))
            return
        delivery = Delivery(
            transport=self.name,
            address=frame_address(session.device),
            payload=frame,
            received_at=datetime.now(UTC),
            receipt=WsReceipt(session, head.frame_id),
        )
        # A full inbox blocks here, which stops reading this socket: back-pressure.
        await self._inbox.put(delivery)

    async def _detach(self, session: Session, reason: str, code: int | None) -> None:
        """Forget an ended socket; unless a newer one replaced it, the device goes offline."""
        session.open = False
        if session.writer is not None:
            session.writer.cancel()
            await asyncio.gather(session.writer, return_exceptions=True)
        if self._sessions.get(session.device) is not session:
            return  # replaced, or the transport stopped: not an offline change
        del self._sessions[session.device]
        if self._open:
            await self._inbox.put(
                Delivery(
                    transport=self.name,
                    address=notice_address(session.device),
                    payload=disconnect_frame(reason, code),
                    received_at=datetime.now(UTC),
                )
            )

    async def _end(self, session: Session, code: int, reason: str) -> None:
        session.open = False
        try:
            await session.peer.close(code, reason)
        except Exception:
            logger.debug("closing %s's socket failed", session.device, exc_info=True)

    async def _write(self, session: Session) -> None:
        """Send the session's outgoing frames in order; a failed send ends the socket."""
        try:
            while True:
                text = await session.outbox.get()
                await session.peer.send_text(text)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the library raises, the socket is done
            logger.info("sending to %s failed (%s); closing its socket", session.device, exc)
            await self._end(session, GOING_AWAY, "send failed")

    def _queue(self, session: Session, text: str) -> bool:
        """Queue a frame for the device; a device this far behind is disconnected."""
        if not session.open:
            return False
        if session.outbox.qsize() >= self.options.outbox_frames:
            logger.warning("%s is not reading its socket; closing it", session.device)
            session.closing = asyncio.ensure_future(self._end(session, POLICY, "not reading"))
            return False
        session.outbox.put_nowait(text)
        return True

    def ack(self, deliveries: Sequence[Delivery], verdicts: Sequence[str | None] = ()) -> int:
        """Tell each device which of its frames were committed (``ack`` with the frame's id;
        with ``dead_letter`` when the frame was kept as a dead letter instead of taken)."""
        acked = 0
        for index, delivery in enumerate(deliveries):
            receipt = delivery.receipt
            if not isinstance(receipt, WsReceipt):
                continue
            verdict = verdicts[index] if index < len(verdicts) else None
            if receipt.frame_id is not None:
                body: dict[str, object] = {"type": "ack", "id": receipt.frame_id}
                if verdict is not None:
                    body["dead_letter"] = verdict
                text = json.dumps(body)
            elif verdict is not None:
                text = _error(None, f"dead-lettered: {verdict}")
            else:
                continue
            acked += self._queue(receipt.session, text)
        return acked

    @property
    def positions(self) -> None:
        """None: what is not acknowledged is delivered again by its sender."""
        return None

    def holds(self, device: str) -> bool:
        return device in self._sessions

    async def send(self, device: str, kind: TopicKind, payload: bytes) -> None:
        """Send a command (the dispatcher's JSON envelope) as seed 003's ``command`` frame."""
        session = self._sessions.get(device)
        if session is None or not session.open:
            raise DeviceUnreachableError(f"{device} has no open WebSocket")
        if kind is not TopicKind.COMMAND:
            raise TransportError(f"nothing but commands is sent to devices, not {kind}")
        if not self._queue(session, command_frame(payload)):
            raise DeviceUnreachableError(f"{device}'s socket is closing")


def command_frame(envelope: bytes) -> str:
    """Seed 003's ``command`` frame from the dispatcher's JSON envelope: ``command_id`` is
    the request id the device answers ``command_ack`` with."""
    body = json.loads(envelope)
    ((name, payload),) = body["command"].items()
    return json.dumps(
        {
            "type": "command",
            "command_id": body["request_id"],
            "command_name": name,
            "payload": payload,
            "command_type": body["type"],
            "sequence": body["sequence"],
            "auth_level": body["auth_level"],
            "timestamp": body["timestamp"],
        },
        separators=(",", ":"),
    )


def _error(frame_id: str | None, message: str) -> str:
    return json.dumps({"type": "error", "id": frame_id, "error": message[:300]})


__all__ = [
    "Peer",
    "Session",
    "WebSocketOptions",
    "WebSocketTransport",
    "WsReceipt",
    "command_frame",
]
