"""A few seed 003 boards for the demo: each holds its socket to ``fleetwatch api``, reports
its state every minute and a heartbeat with readings every 15 s, answers commands, and
reconnects (resending what was not acknowledged) whenever the server goes away.

``fleetwatch simulate-ws --tokens FILE`` plays the boards a file lists, a line each:
``SERIAL DEVICE_TYPE TOKEN`` (``scripts/run.sh`` writes it with tokens an admin issued).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from pathlib import Path

from websockets.exceptions import ConnectionClosed, InvalidStatus

from simulator.errors import SimulatorConfigError
from simulator.websocket import WsDevice

__all__ = ["Board", "read_boards", "run_boards"]

logger = logging.getLogger(__name__)

STATUS_EVERY_S = 60.0
HEARTBEAT_EVERY_S = 15.0
RECONNECT_MAX_S = 15.0


@dataclass(frozen=True, slots=True)
class Board:
    """One board of the demo: its serial, type and device token."""

    serial: str
    device_type: str
    token: str


def read_boards(path: Path) -> list[Board]:
    """The boards of a tokens file (``SERIAL DEVICE_TYPE TOKEN`` a line)."""
    boards = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) != 3 or not parts[2].startswith("fwd_"):
            raise SimulatorConfigError(f"{path.name}:{number}: want SERIAL DEVICE_TYPE fwd_TOKEN")
        boards.append(Board(*parts))
    return boards


class _Readings:
    """Plausible values drifting slowly, per board."""

    def __init__(self, board: Board, rng: random.Random) -> None:
        self._camera = board.device_type == "ESP32-CAM"
        self._rng = rng
        self.temperature = rng.uniform(30.0, 45.0)
        self.rssi = rng.randint(-75, -50)
        self.free_heap = rng.randint(120_000, 200_000)
        self.fps = 15.0
        self.streaming = True

    def step(self) -> dict[str, float | bool]:
        rng = self._rng
        self.temperature = min(85.0, max(20.0, self.temperature + rng.gauss(0, 0.4)))
        self.rssi = min(-30, max(-95, self.rssi + rng.choice((-2, -1, 0, 0, 1, 2))))
        self.free_heap = max(40_000, self.free_heap + rng.randint(-6_000, 6_000))
        values: dict[str, float | bool] = {
            "temperature": round(self.temperature, 1),
            "rssi": self.rssi,
            "free_heap": self.free_heap,
        }
        if self._camera:
            if rng.random() < 0.02:
                self.streaming = not self.streaming
            self.fps = round(rng.uniform(12.0, 20.0), 1) if self.streaming else 0.0
            values |= {"fps": self.fps, "streaming": self.streaming}
        else:
            values |= {"humidity": round(rng.uniform(35, 60), 1), "battery": 100.0}
        return values


async def _play(board: Board, api_url: str, stop: asyncio.Event, seed: int) -> None:
    device = WsDevice(api_url, board.serial, board.token, board.device_type)
    readings = _Readings(board, random.Random(seed))  # noqa: S311 - simulated values
    delay = 1.0
    last_status = -STATUS_EVERY_S
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            if not device.connected:
                await device.connect(resend=True)
                delay = 1.0
                logger.info("%s connected", board.serial)
            values = readings.step()
            if loop.time() - last_status >= STATUS_EVERY_S:
                extra = {
                    "firmware": "2.3.1",
                    "sensor": "OV2640" if "CAM" in board.device_type else "",
                }
                await device.status({**values, **extra})
                last_status = loop.time()
            else:
                await device.heartbeat(**values)
        except (OSError, InvalidStatus, ConnectionClosed, TimeoutError, RuntimeError) as exc:
            logger.info("%s: %s; reconnecting in %.0fs", board.serial, exc, delay)
            await device.drop()
            if await _wait(stop, delay):
                break
            delay = min(delay * 2, RECONNECT_MAX_S)
            continue
        if await _wait(stop, HEARTBEAT_EVERY_S):
            break
    with contextlib.suppress(Exception):
        await device.close()


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless stopped first; True when stopped."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


async def run_boards(boards: list[Board], api_url: str, stop: asyncio.Event) -> None:
    """Play every board until ``stop``."""
    await asyncio.gather(*(_play(b, api_url, stop, n) for n, b in enumerate(boards)))
