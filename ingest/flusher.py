"""Committed points on their way from the PostgreSQL outbox to InfluxDB, beside the batches.

A batch's points are committed in the outbox with the batch; writing them to InfluxDB and
forgetting them afterwards is not needed for the batch to be acknowledged. So a thread of
their own does it while the next batch is processed: a batch's acknowledgement waits for its
commit only, and points of batches that committed meanwhile go to InfluxDB in one request.
The thread has its own PostgreSQL connection for the deletions. What it has not written when
the process ends stays in the outbox and is replayed at the next start.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence

import psycopg

from stores.errors import StoreError
from stores.influx.writer import LineWriter
from stores.postgres.ingest_store import IngestStore

logger = logging.getLogger(__name__)


def flush_points(
    writer: LineWriter, store: IngestStore, ids: Sequence[int], lines: Sequence[str]
) -> bool:
    """Write committed points, then forget them; False when either step failed.

    Never raises: the batch these points belong to has committed. Points whose deletion
    failed stay in the outbox and are replayed, which rewrites the same series and times.
    """
    try:
        writer.write(lines)
    except StoreError as exc:
        logger.warning("InfluxDB write failed, %d points wait in the outbox: %s", len(ids), exc)
        return False
    try:
        store.delete_points(ids)
    except (StoreError, psycopg.Error) as exc:
        logger.warning(
            "%d points written to InfluxDB but not yet removed from the outbox: %s", len(ids), exc
        )
        return False
    return True


class PointFlusher:
    """A thread that writes submitted points; ``on_failure`` is called when a write or a
    deletion failed (the outbox then holds the points until the drainer replays them)."""

    def __init__(
        self, writer: LineWriter, store: IngestStore, on_failure: Callable[[], None]
    ) -> None:
        self._writer = writer
        self._store = store
        self._on_failure = on_failure
        self._queue: deque[tuple[Sequence[int], Sequence[str]]] = deque()
        self._changed = threading.Condition()
        self._busy = False
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="points to InfluxDB", daemon=True)
        self._thread.start()

    def submit(self, ids: Sequence[int], lines: Sequence[str]) -> None:
        """Queue a committed batch's points."""
        with self._changed:
            self._queue.append((ids, lines))
            self._changed.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until everything submitted so far was handled; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._queue and not self._busy, timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued (within ``timeout_s``), then stop the thread."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._thread.join(timeout_s)
        self._store.close()

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._queue or self._closing)
                if not self._queue:
                    return
                taken = list(self._queue)
                self._queue.clear()
                self._busy = True
            ids = [i for batch_ids, _ in taken for i in batch_ids]
            lines = [line for _, batch_lines in taken for line in batch_lines]
            try:
                if not flush_points(self._writer, self._store, ids, lines):
                    self._on_failure()
            except Exception:  # a bug must not end the thread: the outbox keeps the points
                logger.exception("writing %d points failed", len(ids))
                self._on_failure()
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()
