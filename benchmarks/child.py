"""The benchmark's child processes: ingest (the real ``IngestService``, lightly instrumented)
and, on Kafka, the MQTT-to-Kafka bridge.

Each is started with multiprocessing's *spawn* method so it shares no interpreter (and no GIL)
with the publisher or with the others. It talks to the parent over one duplex pipe: it sends
``STARTING`` when the interpreter is up and the service built (the moment it starts
connecting), ``READY`` once connected (ingest: subscribed, or joined the consumer group; the
bridge: subscribed to the broker), waits for ``STOP``, and answers with its report.

An ingest process reads MQTT by default; given ``kafka`` settings it is one worker of the
consumer group instead (``fleetwatch ingest --source kafka``), named ``name``.

Instrumentation, all outside the service's code:

* a task waits on ``IngestService.wait_processed`` and timestamps every committed batch,
  which gives the first and last commit times (from the start: a kept session's backlog is
  delivered right behind the CONNACK, possibly before ``READY``);
* ``Pipeline.process`` is wrapped on the instance to add up the time spent in it (decode,
  one PostgreSQL transaction, InfluxDB write) and, with ``profile_dir``, to run it under
  cProfile. The event loop thread (MQTT reading, batching, acknowledging) gets a profiler of
  its own: cProfile sees one thread only;
* a Kafka worker's ``StreamPositions.assign`` is wrapped to timestamp each assignment of
  partitions (the consumer group's rebalances).
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
from fleetwatch.settings import InfluxSettings, KafkaSettings, MqttSettings, PostgresSettings
from ingest.handling import Item, Outcome
from ingest.service import IngestOptions, IngestService
from ingest.transports import Delivery, MqttTransport, Transport
from ingest.transports.positions import StreamPositions

logger = logging.getLogger(__name__)

STARTING = "starting"
READY = "ready"
STOP = "stop"
START_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestSpec:
    """Everything an ingest process needs, picklable."""

    database_url: str
    topic_prefix: str
    client_id: str
    bucket: str
    batch_size: int
    batch_wait_s: float
    log_level: str
    profile_dir: str | None = None
    inbox_size: int = 0  # deliveries the transport holds before batching; 0: its default
    name: str = "ingest"  # in reports and profile file names; a Kafka worker's name
    kafka: KafkaSettings | None = None  # a worker of this topic's consumer group; None: MQTT


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeSpec:
    """Everything the bridge process needs, picklable."""

    topic_prefix: str
    client_id: str
    kafka: KafkaSettings
    log_level: str


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestReport:
    """What the ingest process observed about itself."""

    commits: list[tuple[float, int]] = field(default_factory=list)  # (time.time(), total)
    assignments: list[tuple[float, int]] = field(default_factory=list)  # (time, partitions)
    messages: int = 0  # device messages (fleetwatch's own commands left out)
    ignored: int = 0
    accepted: int = 0
    duplicates: int = 0
    points: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    batch_topics: int = 0  # distinct topics in each batch, added up over the batches
    busy_s: float = 0.0  # wall time inside Pipeline.process
    cpu_s: float = 0.0  # user + system, all threads, since subscribed
    loop_cpu_s: float = 0.0  # of which the event loop thread: MQTT in, batching, acks
    max_rss_kib: int = 0
    failure: str | None = None

    @property
    def sustained_rate(self) -> float | None:
        """Messages per second from the first commit to the last (the first batch excluded:
        it was committed at the start of the interval)."""
        return combined_rate([self])


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeReport:
    """What the bridge process observed about itself."""

    received: int = 0  # from the broker
    forwarded: int = 0  # acknowledged by Kafka
    acknowledged: int = 0  # to the broker
    truncated: int = 0
    cpu_s: float = 0.0  # user + system, all threads (librdkafka's included), since subscribed
    max_rss_kib: int = 0
    failure: str | None = None


def combined_rate(reports: Sequence[IngestReport]) -> float | None:
    """Messages per second that ingest processes committed together, from the first commit
    of any to the last of any; the first commit's batch excluded (it was processed before
    the interval began). None with fewer than two commits."""
    steps = sorted(
        (at, total - before)
        for report in reports
        for (at, total), before in zip(
            report.commits, [0, *(n for _, n in report.commits)], strict=False
        )
    )
    if len(steps) < 2:
        return None
    messages = sum(count for _, count in steps[1:])
    return messages / max(steps[-1][0] - steps[0][0], 1e-9)


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
        self.topics = 0

    def __call__(
        self,
        deliveries: Sequence[Delivery],
        items: Sequence[Item] | None = None,
        positions: StreamPositions | None = None,
    ) -> Outcome:
        # Batches run one at a time in a worker thread, so one profiler is never shared.
        started = time.perf_counter()
        # How many devices' rows a batch touches (a topic is a device's kind of message).
        self.topics += len({delivery.address for delivery in deliveries})
        if self._profiler is not None:
            self._profiler.enable()
        try:
            # Older services call with fewer arguments (comparisons across revisions).
            if items is None:
                return self._process(deliveries)
            if positions is None:
                return self._process(deliveries, items)
            return self._process(deliveries, items, positions)
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


def _record_assignments(positions: StreamPositions, assignments: list[tuple[float, int]]) -> None:
    """Timestamp every assignment of partitions to this worker (after its CDC states are
    loaded), with how many it owns then."""
    assign = positions.assign

    def timed(count: int, partitions: Sequence[int]) -> dict[int, int | None]:
        starts = assign(count, partitions)
        assignments.append((time.time(), len(positions.stamps())))
        return starts

    positions.assign = timed  # type: ignore[method-assign]


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _stop_on(channel: Connection) -> asyncio.Event:
    """An event set when the parent sends ``STOP`` or goes away."""
    stop = asyncio.Event()

    def on_message() -> None:
        try:
            if channel.recv() == STOP:
                stop.set()
        except EOFError:  # the parent is gone
            stop.set()

    asyncio.get_running_loop().add_reader(channel.fileno(), on_message)
    return stop


async def _until_connected(running: asyncio.Task[None], connected: asyncio.Event) -> None:
    """Wait until ``connected`` is set; raise the start-up failure if ``running`` ends
    first. On a failure here asyncio.run cancels what is left."""
    waiting = asyncio.create_task(connected.wait())
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            await asyncio.wait({running, waiting}, return_when=asyncio.FIRST_COMPLETED)
    except TimeoutError as exc:
        raise TimeoutError(f"not connected within {START_TIMEOUT_S:.0f} s") from exc
    if running.done():
        running.result()  # raises the start-up failure


def _service(spec: IngestSpec) -> tuple[IngestService, StreamPositions | None]:
    """The service as ``fleetwatch ingest`` builds it (``--source kafka`` when the spec has
    Kafka settings), and its stream positions on Kafka."""
    mqtt = MqttSettings(topic_prefix=spec.topic_prefix, mqtt_client_id=spec.client_id)
    transports: list[Transport] = []
    positions = None
    if spec.kafka is not None:
        from ingest.transports.kafka import KafkaTransport  # noqa: PLC0415 - a C library

        if spec.inbox_size:  # the transport the service would get, with another inbox size
            stream = KafkaTransport(
                spec.kafka, mqtt, spec.database_url, worker=spec.name, queue_size=spec.inbox_size
            )
        else:
            stream = KafkaTransport(spec.kafka, mqtt, spec.database_url, worker=spec.name)
        transports.append(stream)
        positions = stream.positions
    elif spec.inbox_size:  # the transport the service would build, with another inbox size
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
    return service, positions


async def _serve(
    spec: IngestSpec, channel: Connection, worker: cProfile.Profile | None
) -> IngestReport:
    service, positions = _service(spec)
    timed = _TimedProcess(service.pipeline.process, worker)
    service.pipeline.process = timed  # type: ignore[method-assign]
    assignments: list[tuple[float, int]] = []
    if positions is not None:
        _record_assignments(positions, assignments)
    stop = _stop_on(channel)
    loop = asyncio.get_running_loop()
    channel.send(STARTING)
    commits: list[tuple[float, int]] = []
    recorder = asyncio.create_task(_record_commits(service, commits))
    running = asyncio.create_task(service.run(stop))
    await _until_connected(running, service.connected)
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
        assignments=assignments,
        messages=totals.device_messages,
        ignored=totals.ignored,
        accepted=totals.accepted,
        duplicates=totals.duplicates,
        points=totals.points,
        dead_letters=dict(totals.dead_letters),
        batches=totals.batches,
        batch_topics=timed.topics,
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
        worker.dump_stats(folder / f"{spec.name}-worker.pstats")
        loop_profiler.dump_stats(folder / f"{spec.name}-loop.pstats")
    channel.send(report)


async def _bridge(spec: BridgeSpec, channel: Connection) -> BridgeReport:
    from ingest.bridge import Bridge  # noqa: PLC0415 - the Kafka client loads a C library

    mqtt = MqttSettings(topic_prefix=spec.topic_prefix, mqtt_client_id=spec.client_id)
    bridge = Bridge(mqtt, spec.kafka, client_id=spec.client_id)
    stop = _stop_on(channel)
    channel.send(STARTING)
    running = asyncio.create_task(bridge.run(stop))
    await _until_connected(running, bridge.connected)
    channel.send(READY)
    cpu_start = _process_cpu()
    failure = None
    try:
        await running
    except Exception as exc:  # reported to the parent, which decides
        logger.exception("bridge failed")
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        asyncio.get_running_loop().remove_reader(channel.fileno())
    totals = bridge.totals
    return BridgeReport(
        received=totals.received,
        forwarded=totals.forwarded,
        acknowledged=totals.acknowledged,
        truncated=totals.truncated,
        cpu_s=_process_cpu() - cpu_start,
        max_rss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        failure=failure,
    )


def run_bridge(spec: BridgeSpec, channel: Connection) -> None:
    """Process entry point of the bridge: bridge until told to stop, then send the report."""
    logs.configure(spec.log_level)
    try:
        report = asyncio.run(_bridge(spec, channel))
    except Exception as exc:
        logger.exception("bridge could not start")
        report = BridgeReport(failure=f"{type(exc).__name__}: {exc}")
    channel.send(report)
