"""One client process of the WebSocket load benchmark: a share of the fleet, as devices.

Each device is a ``simulator.websocket.WsDevice`` (it numbers its frames, keeps each until
acknowledged and resends what is unacknowledged after a reconnect) driven by two tasks:

- its *life*: connect (hello, then the resend), wait until the socket ends, connect again
  after an exponential backoff with jitter (``backoff_min_s`` doubling up to
  ``backoff_max_s``, each wait drawn from its upper half), as firmware would;
- its *beat*: from its first connection on, a heartbeat every ``interval_s`` seconds from
  a random offset, whether the socket is up or not (a frame made while it is down is kept
  and resent).

A lock per device keeps a heartbeat from going out between a new socket's opening and its
hello (the server wants the device type in the first frame).

The process is driven over a ``multiprocessing`` pipe by ``benchmarks.ws_load``: one
command at a time, each answered (``Command`` and the reply types below). Times are
``time.monotonic()``, which on Linux is one clock for every process of the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import random
import resource
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Final

from simulator.websocket import WsDevice

__all__ = ["Counts", "FleetSpec", "Progress", "Sample", "rss_kib", "run_fleet"]

FOREVER: Final = 10.0**9
LAG_TICK_S: Final = 0.1
SHORT_LIVED_S: Final = 1.0  # a socket closed sooner than this does not reset the backoff


@dataclass(frozen=True, slots=True)
class FleetSpec:
    """What one client process plays."""

    base_url: str
    devices: tuple[tuple[str, str], ...]  # (device id, token)
    device_type: str
    connect_concurrency: int  # handshakes in flight at once in this process
    backoff_min_s: float
    backoff_max_s: float
    seed: int
    interval_s: float  # between heartbeats
    deflate: bool = False  # offer permessage-deflate (ESP32 firmware clients do not)


@dataclass(frozen=True, slots=True)
class Progress:
    """The share's state now.

    Attributes:
        connected: devices whose socket is open.
        last_connected_at: the latest time a device (still connected) opened its socket.
        frames: frames made (unique ids), acknowledged or not.
        acked: frames acknowledged.
        back: devices that connected again after ``since`` (the time asked about).
        cleared: of those, devices that have had every frame that was unacknowledged when
            they reconnected acknowledged (their backlog: sent while the server was down, or
            whose ack was lost).
        last_back_at / last_cleared_at: the latest such reconnection / clearing.
        rss_kib: this client process's resident memory (VmRSS).
    """

    connected: int
    last_connected_at: float
    frames: int
    acked: int
    back: int
    cleared: int
    last_back_at: float
    last_cleared_at: float
    rss_kib: int


@dataclass(frozen=True, slots=True)
class Sample:
    """What happened since the previous sample."""

    latencies: list[float]  # send -> ack, seconds (from the resend for a resent frame)
    connect_s: list[float]  # successful connects: TCP + upgrade + hello + resend
    back_after: list[float]  # per device back since ``since``: reconnected_at - since
    cleared_after: list[float]  # per device cleared: cleared_at - since
    resent: int  # frames resent on reconnection
    failures: dict[str, int]  # failed connects, by exception
    close_codes: dict[int, int]  # sockets ended, by close code (1006: no close frame)
    errors: dict[str, int]  # the server's error frames, by text
    loop_lag: list[float]  # how late this process's event loop woke a 0.1 s sleep, seconds


@dataclass(frozen=True, slots=True)
class Counts:
    """Per device: frames made, and of them acknowledged."""

    frames: dict[str, int]
    acked: dict[str, int]


@dataclass(eq=False)
class _Device:
    ws: WsDevice
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    up: asyncio.Event = field(default_factory=asyncio.Event)  # connected once
    connected: bool = False
    connected_at: float = 0.0
    cleared_at: float | None = None
    latencies_seen: int = 0
    errors_seen: int = 0


class Fleet:
    """The devices of one process and the counters the commands read."""

    def __init__(self, spec: FleetSpec) -> None:
        self.spec = spec
        self.devices = [
            _Device(
                WsDevice(
                    spec.base_url, device_id, token, spec.device_type, compression=spec.deflate
                )
            )
            for device_id, token in spec.devices
        ]
        self._random = random.Random(spec.seed)  # noqa: S311 - jitter, not secrets
        self._handshakes = asyncio.Semaphore(spec.connect_concurrency)
        self._lives: list[asyncio.Task[None]] = []
        self._beats: list[asyncio.Task[None]] = []
        self._connect_s: list[float] = []
        self._failures: Counter[str] = Counter()
        self._close_codes: Counter[int] = Counter()
        self._resent = 0
        self._stopping = False
        self._lag: list[float] = []
        self._lag_task: asyncio.Task[None] | None = None

    # --- the devices' tasks ---------------------------------------------------------------

    async def _connect(self, device: _Device) -> frozenset[str] | None:
        """One attempt; the frames pending when it started (resent by it), or None."""
        ws = device.ws
        async with self._handshakes:
            pending = frozenset(ws.unacked)
            started = time.monotonic()
            try:
                await ws.connect()
            except Exception as exc:  # noqa: BLE001 - every failure is counted by its kind
                self._failures[_describe(exc)] += 1
                return None
        now = time.monotonic()
        self._connect_s.append(now - started)
        self._resent += len(pending)
        device.connected, device.connected_at, device.cleared_at = True, now, None
        device.up.set()
        return pending

    async def _life(self, device: _Device) -> None:
        ws, delay = device.ws, self.spec.backoff_min_s
        while not self._stopping:
            async with device.lock:
                pending = await self._connect(device)
            if pending is None:
                await asyncio.sleep(delay * self._random.uniform(0.5, 1.0))
                delay = min(2 * delay, self.spec.backoff_max_s)
                continue
            await ws.wait_for("backlog", _cleared(ws, pending), FOREVER)
            if ws.close_code is None:
                device.cleared_at = time.monotonic()
            await ws.wait_for("close", lambda: ws.close_code is not None, FOREVER)
            device.connected = False
            self._close_codes[ws.close_code or 0] += 1
            if time.monotonic() - device.connected_at < SHORT_LIVED_S:
                await asyncio.sleep(delay * self._random.uniform(0.5, 1.0))
                delay = min(2 * delay, self.spec.backoff_max_s)
            else:
                delay = self.spec.backoff_min_s

    async def _beat(self, device: _Device) -> None:
        await device.up.wait()
        interval_s = self.spec.interval_s
        first_at, beats = time.monotonic() + self._random.uniform(0, interval_s), 0
        while True:
            await asyncio.sleep(max(0.0, first_at + beats * interval_s - time.monotonic()))
            beats += 1
            async with device.lock:
                # Kept in ws.unacked whether or not it went out; resent after a reconnect.
                with contextlib.suppress(Exception):
                    await device.ws.heartbeat()

    async def _watch_loop(self) -> None:
        """Record how late the event loop wakes a sleeper: time the devices' frames (acks
        included) wait on this process, not on the server.

        Also moves everything alive to the garbage collector's permanent generation every
        tick: with thousands of sockets a full collection would scan a million objects and
        stall this process for up to a second, which would show as the server's latency.
        Cyclic garbage older than a tick is then never freed; a few minutes' run can spare it.
        """
        while True:
            started = time.monotonic()
            await asyncio.sleep(LAG_TICK_S)
            self._lag.append(time.monotonic() - started - LAG_TICK_S)
            gc.freeze()

    # --- the commands ---------------------------------------------------------------------

    def connect(self) -> None:
        """Bring every device up (and keep it up); each beats from its first connection."""
        self._lives = [asyncio.create_task(self._life(d)) for d in self.devices]
        self._beats = [asyncio.create_task(self._beat(d)) for d in self.devices]

    async def quiet(self) -> None:
        """Stop making heartbeats."""
        for task in self._beats:
            task.cancel()
        await asyncio.gather(*self._beats, return_exceptions=True)

    def progress(self, since: float) -> Progress:
        """Counters now; ``back`` / ``cleared`` count reconnections after ``since``."""
        connected = [d for d in self.devices if d.connected]
        back = [d for d in self.devices if d.connected_at > since]
        cleared = [d.cleared_at for d in back if d.cleared_at is not None]
        frames = sum(len(d.ws.acks) + len(d.ws.unacked) for d in self.devices)
        return Progress(
            connected=len(connected),
            last_connected_at=max((d.connected_at for d in connected), default=0.0),
            frames=frames,
            acked=sum(len(d.ws.acks) for d in self.devices),
            back=len(back),
            cleared=len(cleared),
            last_back_at=max((d.connected_at for d in back), default=0.0),
            last_cleared_at=max(cleared, default=0.0),
            rss_kib=rss_kib(os.getpid()) or 0,
        )

    def sample(self, since: float) -> Sample:
        """Latencies, connects, closes and errors since the previous sample."""
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        for d in self.devices:
            latencies.extend(d.ws.latencies[d.latencies_seen :])
            d.latencies_seen = len(d.ws.latencies)
            for frame in d.ws.errors[d.errors_seen :]:
                errors[str(frame.get("error"))[:80]] += 1
            d.errors_seen = len(d.ws.errors)
        back = [d for d in self.devices if d.connected_at > since]
        sample = Sample(
            latencies=latencies,
            connect_s=self._connect_s,
            back_after=[d.connected_at - since for d in back],
            cleared_after=[d.cleared_at - since for d in back if d.cleared_at is not None],
            resent=self._resent,
            failures=dict(self._failures),
            close_codes=dict(self._close_codes),
            errors=dict(errors),
            loop_lag=self._lag,
        )
        self._connect_s, self._resent, self._lag = [], 0, []
        self._failures.clear()
        self._close_codes.clear()
        return sample

    def counts(self) -> Counts:
        """Per device: frames made and acknowledged."""
        return Counts(
            frames={d.ws.device_id: len(d.ws.acks) + len(d.ws.unacked) for d in self.devices},
            acked={d.ws.device_id: len(d.ws.acks) for d in self.devices},
        )

    async def close(self) -> None:
        """Stop reconnecting and close every socket (closing handshake)."""
        self._stopping = True
        for task in self._lives:
            task.cancel()
        await asyncio.gather(*self._lives, return_exceptions=True)
        await asyncio.gather(*(d.ws.close() for d in self.devices), return_exceptions=True)

    async def serve(self, channel: Connection) -> None:
        """Answer the driver's commands until ``exit``."""
        self._lag_task = asyncio.create_task(self._watch_loop())
        channel.send("ready")
        while True:
            command, *args = await asyncio.to_thread(channel.recv)
            if command == "connect":
                self.connect()
                channel.send(None)
            elif command == "progress":
                channel.send(self.progress(*args))
            elif command == "sample":
                channel.send(self.sample(*args))
            elif command == "counts":
                channel.send(self.counts())
            elif command == "quiet":
                await self.quiet()
                channel.send(None)
            elif command == "close":
                await self.close()
                channel.send(None)
            elif command == "exit":
                channel.send(None)
                return
            else:
                channel.send(ValueError(f"unknown command {command!r}"))


def _cleared(ws: WsDevice, pending: frozenset[str]) -> Callable[[], bool]:
    """Whether every frame of ``pending`` is acknowledged (or the socket ended)."""
    return lambda: pending <= ws.acks.keys() or ws.close_code is not None


def rss_kib(pid: int) -> int | None:
    """VmRSS (resident memory now) of a live process, in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc).split("\n", 1)[0][:60]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run_fleet(spec: FleetSpec, channel: Connection) -> None:
    """A client process's entry point (``multiprocessing`` spawn target)."""
    logging.basicConfig(level=logging.ERROR)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(Fleet(spec).serve(channel))
