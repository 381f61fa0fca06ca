"""Keeping Python's garbage collector's full passes off the message path.

An ingest process holds hundreds of thousands of long-lived objects (every device's CDC
state, parsed topics, open sockets in the API process) and allocates several objects per
message. The collector's full passes walk every tracked object: at a fleet's size that is
a pause of a large fraction of a second every few seconds, on the thread that receives,
acknowledges and commits. So, once a second, the young generations are collected and what
survived them is moved out of the collector's sight (``gc.freeze``); every ten minutes
everything is unfrozen and collected once, so cycles that died after being frozen are
still reclaimed.
"""

from __future__ import annotations

import gc
import time
from typing import Final

FREEZE_EVERY_S: Final = 1.0
FULL_COLLECTION_EVERY_S: Final = 600.0


class CollectorTamer:
    """One ``tick`` a second (an ingest loop); ``release`` when the process stops."""

    def __init__(self, full_every_s: float = FULL_COLLECTION_EVERY_S) -> None:
        self._full_every_s = full_every_s
        self._last_full = time.monotonic()

    async def tick(self) -> None:
        """Collect the young generations and freeze the survivors; everything, at times."""
        if time.monotonic() - self._last_full >= self._full_every_s:
            gc.unfreeze()
            gc.collect()
            self._last_full = time.monotonic()
        else:
            gc.collect(1)
        gc.freeze()

    @staticmethod
    def release() -> None:
        """Give everything back to the collector."""
        gc.unfreeze()
