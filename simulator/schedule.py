"""Simulated time's agenda and what it produces: timed actions in, timed messages out."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import NamedTuple

Action = Callable[[int], None]
"""Something that happens at a simulated instant; called with that instant (epoch ms)."""


class Emission(NamedTuple):
    """One message a simulated device publishes: when, where and the protobuf bytes.

    A named tuple rather than a dataclass: a run creates millions of them, and a tuple is the
    cheapest immutable record Python builds.
    """

    at_ms: int
    topic: str
    payload: bytes


class Agenda:
    """A priority queue of actions by simulated time; equal times run in scheduling order.

    The order of insertion breaks ties, so the agenda (and every stream built on it) is
    deterministic: no two entries ever compare their actions.
    """

    __slots__ = ("_heap", "_order")

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Action]] = []
        self._order = 0

    def at(self, when_ms: int, action: Action) -> None:
        """Run ``action`` at simulated ``when_ms``."""
        self._order += 1
        heapq.heappush(self._heap, (when_ms, self._order, action))

    def next_at(self) -> int | None:
        """When the earliest action is due, or None if nothing is scheduled."""
        return self._heap[0][0] if self._heap else None

    def pop_due(self, until_ms: int) -> tuple[int, Action] | None:
        """The earliest action if it is due at or before ``until_ms``, removed from the agenda."""
        heap = self._heap
        if not heap or heap[0][0] > until_ms:
            return None
        when, _, action = heapq.heappop(heap)
        return when, action

    def __len__(self) -> int:
        return len(self._heap)
