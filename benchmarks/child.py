"""The ingest process of the benchmark: the real ``IngestService``, lightly instrumented.

Started with multiprocessing's *spawn* method so it shares no interpreter (and no GIL) with
the publisher. It talks to the parent over one duplex pipe: it sends ``STARTING`` when the
interpreter is up and the service built (the moment it starts connecting), ``READY`` once
subscribed, waits for ``STOP``, and answers with an ``IngestReport``.

Instrumentation, all outside the service's code:

* a task waits on ``IngestService.wait_processed`` and timestamps every committed batch,
  which gives the first and last commit times (from the start: a kept session's backlog is
  delivered right behind the CONNACK, possibly before ``READY``);
* ``Pipeline.process`` is wrapped on the instance to add up the time spent in it (decode,
  one PostgreSQL transaction, InfluxDB write) and, with ``profile_dir``, to run it under
  cProfile. The event loop thread (MQTT reading, batching, acknowledging) gets a profiler of
  its own: cProfile sees one thread only.
"""

from __future__ import annotations

import asyncio
import cProfile
import logging
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from pydantic import PostgresDsn

from fleetwatch import logs
from fleetwatch.settings import InfluxSettings, MqttSettings, PostgresSettings
from ingest.handling import Item, Outcome
from ingest.service import IngestOptions, IngestService
from ingest.transports import Delivery, MqttTransport, Transport

logger = logging.getLogger(__name__)

STARTING = "starting"
READY = "ready"
STOP = "stop"
START_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestSpec:
    """Everything the child needs, picklable."""

    database_url: str
    topic_prefix: str
    client_id: str
    bucket: str
    batch_size: int
    batch_wait_s: float
    log_level: str
    profile_dir: str | None = None
    inbox_size: int = 0  # deliveries the MQTT transport holds before batching; 0: its default


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestReport:
    """What the ingest process observed about itself."""

    commits: list[tuple[float, int]] = field(default_factory=list)  # (time.time(), total)
    messages: int = 0  # device messages (fleetwatch's own commands left out)
    ignored: int = 0
    accepted: int = 0
    duplicates: int = 0
    points: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    busy_s: float = 0.0  # wall time inside Pipeline.process
    cpu_s: float = 0.0  # user + system, all threads, since subscribed
    loop_cpu_s: float = 0.0  # of which the event loop thread: MQTT in, batching, acks
    max_rss_kib: int = 0
    failure: str | None = None

    @property
    def sustained_rate(self) -> float | None:
        """Messages per second from the first commit to the last (the first batch excluded:
        it was committed at the start of the interval)."""
        if len(self.commits) < 2:
            return None
        (t0, n0), (t1, n1) = self.commits[0], self.commits[-1]
        return (n1 - n0) / max(t1 - t0, 1e-9)


class _TimedProcess:
    """``Pipeline.process`` with its wall time added up (and optionally profiled)."""

    def __init__(
        self,
        process: Callable[..., Outcome],
        profiler: cProfile.Profile | None,
    ) -> None:
        self._process = process
        self._profiler = profiler
        self.busy_s = 0.0

    def __call__(
        self, deliveries: Sequence[Delivery], items: Sequence[Item] | None = None
    ) -> Outcome:
        # Batches run one at a time in a worker thread, so one profiler is never shared.
        started = time.perf_counter()
        if self._profiler is not None:
            self._profiler.enable()
        try:
            # Older services call with the deliveries only (comparisons across revisions).
            if items is None:
                return self._process(deliveries)
            return self._process(deliveries, items)
        finally:
            if self._profiler is not None:
                self._profiler.disable()
            self.busy_s += time.perf_counter() - started


async def _record_commits(service: IngestService, commits: list[tuple[float, int]]) -> None:
    """Timestamp each time more device messages are committed (once per batch, or less)."""
    totals = service.pipeline.totals
    while True:
        try:
            await service.wait_processed(totals.device_messages + 1, timeout_s=3600)
        except TimeoutError:
            continue
        commits.append((time.time(), totals.device_messages))


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _serve(
    spec: IngestSpec, channel: Connection, worker: cProfile.Profile | None
) -> IngestReport:
    mqtt = MqttSettings(topic_prefix=spec.topic_prefix, mqtt_client_id=spec.client_id)
    transports: list[Transport] = []
    if spec.inbox_size:  # the transport the service would build, with another inbox size
        transports.append(MqttTransport(mqtt, client_id=spec.client_id, queue_size=spec.inbox_size))
    service = IngestService(
        PostgresSettings(database_url=PostgresDsn(spec.database_url)),
        None if transports else mqtt,
        InfluxSettings(influx_bucket=spec.bucket),
        IngestOptions(
            client_id=spec.client_id, batch_size=spec.batch_size, batch_wait_s=spec.batch_wait_s
        ),
        transports=transports,
    )
    timed = _TimedProcess(service.pipeline.process, worker)
    service.pipeline.process = timed  # type: ignore[method-assign]
    stop = asyncio.Event()

    def on_message() -> None:
        try:
            if channel.recv() == STOP:
                stop.set()
        except EOFError:  # the parent is gone
            stop.set()

    loop = asyncio.get_running_loop()
    loop.add_reader(channel.fileno(), on_message)
    channel.send(STARTING)
    commits: list[tuple[float, int]] = []
    recorder = asyncio.create_task(_record_commits(service, commits))
    running = asyncio.create_task(service.run(stop))
    subscribed = asyncio.create_task(service.connected.wait())
    # On a failure here asyncio.run cancels what is left: the service and the recorder.
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            await asyncio.wait({running, subscribed}, return_when=asyncio.FIRST_COMPLETED)
    except TimeoutError as exc:
        raise TimeoutError(f"not subscribed within {START_TIMEOUT_S:.0f} s") from exc
    if running.done():
        running.result()  # raises the start-up failure
    channel.send(READY)
    # CPU from here on: start-up (imports, schema check, CDC seeding) is not the workload.
    loop_cpu_start, cpu_start = time.thread_time(), _process_cpu()
    failure = None
    try:
        await running
    except Exception as exc:  # reported to the parent, which decides
        logger.exception("ingest failed")
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        loop.remove_reader(channel.fileno())
        recorder.cancel()
        await asyncio.gather(recorder, return_exceptions=True)
    totals = service.pipeline.totals
    usage = resource.getrusage(resource.RUSAGE_SELF)
    loop_cpu = time.thread_time() - loop_cpu_start  # this coroutine runs on the loop thread
    return IngestReport(
        commits=commits,
        messages=totals.device_messages,
        ignored=totals.ignored,
        accepted=totals.accepted,
        duplicates=totals.duplicates,
        points=totals.points,
        dead_letters=dict(totals.dead_letters),
        batches=totals.batches,
        busy_s=timed.busy_s,
        cpu_s=_process_cpu() - cpu_start,
        loop_cpu_s=loop_cpu,
        max_rss_kib=usage.ru_maxrss,
        failure=failure,
    )


def run_ingest(spec: IngestSpec, channel: Connection) -> None:
    """Process entry point: serve until told to stop, then send the report."""
    logs.configure(spec.log_level)
    worker = cProfile.Profile() if spec.profile_dir else None
    loop_profiler = cProfile.Profile() if spec.profile_dir else None
    try:
        if loop_profiler is not None:
            loop_profiler.enable()
        report = asyncio.run(_serve(spec, channel, worker))
    except Exception as exc:
        logger.exception("ingest could not start")
        report = IngestReport(failure=f"{type(exc).__name__}: {exc}")
    finally:
        if loop_profiler is not None:
            loop_profiler.disable()
    if spec.profile_dir and worker is not None and loop_profiler is not None:
        folder = Path(spec.profile_dir)
        folder.mkdir(parents=True, exist_ok=True)
        worker.dump_stats(folder / "ingest-worker.pstats")
        loop_profiler.dump_stats(folder / "ingest-loop.pstats")
    channel.send(report)
