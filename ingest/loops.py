"""The ingest service's background loops, kept alive and visible.

Each loop is a ``tick`` run on an interval. A tick that raises never ends its loop: the
error is logged (with its traceback unless it is a store or a transport being unreachable,
which is expected and retried), counted in ``fleetwatch_loop_errors_total``, and the next tick
waits with exponential backoff. ``status()`` tells ``/readyz`` and ``/healthz`` whether every
loop is still running, so a loop that ended anyway (cancelled, or a fault in this module)
cannot go unnoticed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ingest.metrics import IngestMetrics
from ingest.transports import TransportError
from stores.errors import StoreUnavailableError

logger = logging.getLogger(__name__)

Tick = Callable[[], Awaitable[None]]

# Failures that say a store or a transport cannot be reached right now: no traceback.
TRANSIENT: tuple[type[Exception], ...] = (StoreUnavailableError, TransportError)


@dataclass(slots=True)
class LoopState:
    """What one loop has done so far."""

    name: str
    interval_s: float
    ticks: int = 0
    errors: int = 0
    failing: int = 0  # consecutive failed ticks
    last_error: str | None = None
    task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def as_json(self) -> dict[str, object]:
        return {
            "running": self.running,
            "ticks": self.ticks,
            "errors": self.errors,
            "failing": self.failing,
            "last_error": self.last_error,
        }


class Loops:
    """Starts, supervises and reports the named loops of one service."""

    def __init__(self, metrics: IngestMetrics, backoff_max_s: float = 60.0) -> None:
        self._metrics = metrics
        self._backoff_max_s = backoff_max_s
        self._states: dict[str, LoopState] = {}

    def start(
        self, name: str, interval_s: float, tick: Tick, stop: asyncio.Event, *, first_now: bool
    ) -> LoopState:
        """Run ``tick`` every ``interval_s`` until ``stop``; at once first if ``first_now``."""
        if name in self._states:
            raise ValueError(f"loop {name!r} started twice")
        state = LoopState(name, interval_s)
        state.task = asyncio.create_task(self._run(state, tick, stop, first_now), name=name)
        self._states[name] = state
        return state

    def state(self, name: str) -> LoopState:
        """The state of loop ``name`` (KeyError if it was never started)."""
        return self._states[name]

    def status(self) -> dict[str, dict[str, object]]:
        """Every loop's state, for the health endpoints."""
        return {name: state.as_json() for name, state in self._states.items()}

    def stopped(self) -> list[str]:
        """The loops that are no longer running."""
        return [name for name, state in self._states.items() if not state.running]

    async def join(self) -> None:
        """Wait for every loop to end (after ``stop`` was set)."""
        tasks = [state.task for state in self._states.values() if state.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    def backoff_s(self, state: LoopState) -> float:
        """The wait after ``state.failing`` failed ticks in a row: the interval, doubled for
        each further failure, at most ``backoff_max_s`` (or the interval, if longer)."""
        doubled: float = state.interval_s * 2.0 ** max(state.failing - 1, 0)
        return max(min(doubled, self._backoff_max_s), state.interval_s)

    async def _run(
        self, state: LoopState, tick: Tick, stop: asyncio.Event, first_now: bool
    ) -> None:
        self._metrics.loop_running.labels(state.name).set(1)
        delay = 0.0 if first_now else state.interval_s
        try:
            while not await wait_or_stop(stop, delay):
                delay = await self._tick(state, tick)
        finally:
            self._metrics.loop_running.labels(state.name).set(0)
            if not stop.is_set():
                logger.error("loop %s ended while the service is running", state.name)

    async def _tick(self, state: LoopState, tick: Tick) -> float:
        """Run one tick; the wait before the next."""
        state.ticks += 1
        try:
            await tick()
        except TRANSIENT as exc:
            self._failed(state, exc, "unavailable")
            logger.warning(
                "%s postponed: %s; next try in %.1fs", state.name, exc, self.backoff_s(state)
            )
        except Exception as exc:
            self._failed(state, exc, "error")
            logger.exception(
                "%s failed (%d in a row); next try in %.1fs",
                state.name,
                state.failing,
                self.backoff_s(state),
            )
        else:
            state.failing = 0
            return state.interval_s
        return self.backoff_s(state)

    def _failed(self, state: LoopState, exc: Exception, kind: str) -> None:
        state.errors += 1
        state.failing += 1
        state.last_error = f"{type(exc).__name__}: {exc}"[:500]
        self._metrics.loop_errors.labels(state.name, kind).inc()


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; True if ``stop`` was set meanwhile."""
    if stop.is_set():
        return True
    try:
        async with asyncio.timeout(seconds):
            await stop.wait()
    except TimeoutError:
        return False
    return True
