"""A simulated seed 003 device (ESP32, ESP32-S3, ESP32-CAM) speaking to ``/ws/{device_id}``.

It behaves as the firmware should: it numbers its frames, keeps each until the server
acknowledges it, sends what is still unacknowledged again after a reconnect, and answers
commands with ``command_ack``. The tests, the demo fleet and the load benchmark all play
devices with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

__all__ = ["WsDevice"]


class WsDevice:
    """One device: ``connect``, ``send`` frames, read ``acks``, ``commands`` and ``errors``.

    Attributes:
        unacked: frames sent and not yet acknowledged, by id, in order.
        acks: the server's ``ack`` frames, by frame id.
        latencies: seconds from sending a frame to its acknowledgement, in ack order.
        commands: the ``command`` frames received.
        errors: the ``error`` frames received.
        close_code: the code the server closed the socket with, once it did.
    """

    def __init__(
        self,
        base_url: str,
        device_id: str,
        token: str,
        device_type: str,
        *,
        answer_commands: str | None = "ack_success",
        use_header: bool = True,
        compression: bool = True,
    ) -> None:
        self.url = f"{base_url.replace('http', 'ws', 1)}/ws/{device_id}"
        self.device_id = device_id
        self.device_type = device_type
        self._token = token
        self._use_header = use_header
        # Offer permessage-deflate (the websockets default); ESP-IDF's and Arduino's
        # WebSocket clients do not, so a simulated fleet as the firmware connects passes False.
        self._compression: str | None = "deflate" if compression else None
        self.answer_commands = answer_commands
        self.unacked: dict[str, str] = {}
        self._sent_at: dict[str, float] = {}
        self.acks: dict[str, dict[str, Any]] = {}
        self.latencies: list[float] = []
        self.commands: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self._socket: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self._number = 0

    @property
    def connected(self) -> bool:
        return self._socket is not None and self.close_code is None

    async def connect(self, *, resend: bool = True, hello: bool = True) -> None:
        """Open the socket, say hello (with the device type), then resend what is unacked."""
        headers = {"Authorization": f"Bearer {self._token}"} if self._use_header else {}
        url = self.url if self._use_header else f"{self.url}?token={self._token}"
        socket = await connect(
            url,
            additional_headers=headers,
            open_timeout=30,
            max_size=2**21,
            ping_interval=None,
            compression=self._compression,
        )
        self._socket, self.close_code = socket, None  # only once it is open
        self._reader = asyncio.create_task(self._read(socket))
        if hello:
            await self._socket.send(json.dumps({"type": "hello", "device_type": self.device_type}))
        if resend:
            for frame_id, frame in list(self.unacked.items()):
                self._sent_at[frame_id] = time.perf_counter()
                await self._socket.send(frame)

    async def send(self, kind: str, **fields: object) -> str:
        """Send a frame of ``kind`` with a fresh id (kept until acknowledged); the id."""
        self._number += 1
        frame_id = f"{self.device_id}-{self._number}"
        frame = json.dumps({"type": kind, "id": frame_id, **fields})
        self.unacked[frame_id] = frame
        self._sent_at[frame_id] = time.perf_counter()
        await self.send_raw(frame)
        return frame_id

    async def send_raw(self, frame: str | bytes) -> None:
        """Send a frame as it is (no id kept)."""
        if self._socket is None:
            raise RuntimeError(f"{self.device_id} is not connected")
        await self._socket.send(frame)

    async def status(self, state: dict[str, object], *, at_ms: int | None = None) -> str:
        """Report the device's state (a snapshot), as of ``at_ms`` (default now)."""
        return await self.send(
            "status", device_type=self.device_type, state_data=state, timestamp=at_ms or _now_ms()
        )

    async def heartbeat(self, **metrics: float | bool) -> str:
        """Prove the device alive (with readings, if any)."""
        fields: dict[str, object] = {"timestamp": _now_ms()}
        if metrics:
            fields["metrics"] = metrics
        return await self.send("heartbeat", **fields)

    async def answer(self, command: dict[str, Any], status: str, **fields: object) -> str:
        """Answer a command with ``command_ack`` (ack_success or ack_error)."""
        return await self.send(
            "command_ack", command_id=command["command_id"], status=status, **fields
        )

    async def wait_for(self, what: str, check: Any, timeout_s: float = 15.0) -> None:  # noqa: ANN401
        """Wait until ``check()`` is true; TimeoutError naming ``what`` otherwise."""
        try:
            async with asyncio.timeout(timeout_s), self._changed:
                await self._changed.wait_for(check)
        except TimeoutError:
            raise TimeoutError(f"{self.device_id}: no {what} in {timeout_s}s") from None

    async def wait_acked(self, ids: Iterable[str], timeout_s: float = 15.0) -> None:
        """Wait for the acknowledgement of every frame in ``ids``."""
        wanted = set(ids)
        await self.wait_for(
            f"ack of {sorted(wanted)[:3]}", lambda: wanted <= self.acks.keys(), timeout_s
        )

    async def wait_closed(self, timeout_s: float = 15.0) -> int | None:
        """Wait until the server closed the socket; its close code."""
        await self.wait_for("close", lambda: self.close_code is not None, timeout_s)
        return self.close_code

    async def close(self) -> None:
        """Close the socket from the device's side."""
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._socket = None

    async def drop(self) -> None:
        """Lose the connection without a closing handshake (power cut)."""
        if self._socket is not None:
            self._socket.transport.abort()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._socket = None

    async def _read(self, socket: ClientConnection) -> None:
        try:
            async for message in socket:
                await self._take(json.loads(message))
        except ConnectionClosed:
            pass
        finally:
            async with self._changed:
                self.close_code = socket.close_code if socket.close_code is not None else 1006
                self._changed.notify_all()

    async def _take(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        async with self._changed:
            if kind == "ack":
                frame_id = str(frame.get("id"))
                self.acks[frame_id] = frame
                if self.unacked.pop(frame_id, None) is not None:
                    sent = self._sent_at.pop(frame_id, None)
                    if sent is not None:
                        self.latencies.append(time.perf_counter() - sent)
            elif kind == "command":
                self.commands.append(frame)
            elif kind == "error":
                self.errors.append(frame)
            self._changed.notify_all()
        if kind == "command" and self.answer_commands is not None:
            await self.answer(frame, self.answer_commands, response={"ok": "yes"})


def _now_ms() -> int:
    return int(time.time() * 1000)
