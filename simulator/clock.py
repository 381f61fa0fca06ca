"""The simulated clock: real time compressed ``speed`` times, starting at a given instant."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from simulator.errors import SimulatorConfigError


@dataclass(slots=True)
class SimClock:
    """Maps the real (monotonic) clock onto simulated epoch milliseconds.

    Simulated time starts at ``start_ms`` when the clock is created and runs ``speed``
    simulated seconds per real second. Device timestamps are read from it, so with
    ``speed=60`` an hour of device history is produced per real minute.

    Args:
        start_ms: simulated epoch milliseconds at creation (usually the real now).
        speed: simulated seconds per real second (> 0).
        monotonic: the real clock in seconds; replaceable in tests.
    """

    start_ms: int
    speed: float = 1.0
    monotonic: Callable[[], float] = time.monotonic
    _origin: float = field(init=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.speed) and self.speed > 0):
            raise SimulatorConfigError(f"speed must be a positive number, got {self.speed}")
        self._origin = self.monotonic()

    def now_ms(self) -> int:
        """The simulated time now, in epoch milliseconds."""
        return self.start_ms + int((self.monotonic() - self._origin) * self.speed * 1000)

    def real_seconds_until(self, at_ms: int) -> float:
        """Real seconds to wait until simulated ``at_ms`` (0 when it is already past)."""
        return max(0.0, (at_ms - self.now_ms()) / (self.speed * 1000))

    def real_elapsed(self) -> float:
        """Real seconds since the clock started."""
        return self.monotonic() - self._origin
