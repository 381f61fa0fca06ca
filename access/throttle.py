"""Sign-in throttling: a growing delay after repeated failures, then a temporary lock.

Pure policy: the store keeps each name's failure count, this works out when the name may try
again. The first few failures cost nothing (people mistype); after that each one doubles the
wait, and at ``lock_after`` the name is locked for ``lock_minutes`` whatever is typed — a
correct password included, so guessing cannot finish inside the lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

__all__ = ["Throttle", "ThrottlePolicy"]


class Throttle(NamedTuple):
    """When a name may try again: ``retry_at`` (the delay) and ``locked_until`` (the lock)."""

    failures: int
    retry_at: datetime | None
    locked_until: datetime | None

    def refused_until(self, now: datetime) -> datetime | None:
        """The moment before which an attempt is refused unchecked, or None."""
        waits = [t for t in (self.retry_at, self.locked_until) if t is not None and t > now]
        return max(waits) if waits else None


@dataclass(frozen=True, slots=True, kw_only=True)
class ThrottlePolicy:
    """How failures are punished.

    Attributes:
        free_failures: failures before any delay.
        base_delay_s: the first delay; each further failure doubles it.
        max_delay_s: the longest delay.
        lock_after: failures that lock the name.
        lock_minutes: how long a lock lasts.
    """

    free_failures: int = 3
    base_delay_s: float = 2.0
    max_delay_s: float = 60.0
    lock_after: int = 8
    lock_minutes: float = 15.0

    def __post_init__(self) -> None:
        if not 0 <= self.free_failures < self.lock_after:
            raise ValueError("free_failures must be below lock_after")
        if self.base_delay_s <= 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("delays must be positive, max_delay_s at least base_delay_s")
        if self.lock_minutes <= 0:
            raise ValueError("lock_minutes must be positive")

    def after_failure(self, failures: int, now: datetime) -> Throttle:
        """The throttle after the ``failures``-th failure in a row, at ``now``."""
        locked = now + timedelta(minutes=self.lock_minutes) if failures >= self.lock_after else None
        over = failures - self.free_failures
        if over <= 0:
            return Throttle(failures, None, locked)
        delay = min(self.base_delay_s * 2 ** (over - 1), self.max_delay_s)
        return Throttle(failures, now + timedelta(seconds=delay), locked)
