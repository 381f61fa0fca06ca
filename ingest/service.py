"""The ingest service: receive, batch, process in a worker thread, acknowledge, repeat.

The service holds its transports (``Transports``: MQTT, plus any given to it) and runs one
receive loop per transport; every batch goes through the same pipeline, one at a time, and
is acknowledged to the transport that delivered it only after its transaction committed. If
PostgreSQL is unreachable the same batch is retried with backoff and nothing is
acknowledged, so the sender keeps (and after a reconnect redelivers) everything not yet
stored. If a transport's connection drops, ingest reconnects it (MQTT: with the same
persistent session). Commands go out through the transport each device is on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from fleetwatch.settings import InfluxSettings, MqttSettings, PostgresSettings, RetentionSettings
from ingest.cdc import CdcTracker
from ingest.collector import FREEZE_EVERY_S, CollectorTamer
from ingest.commands import CommandTiming
from ingest.decoding import DecodeLimits
from ingest.dispatcher import CommandDispatcher
from ingest.handling import BatchHandler, Item, Outcome
from ingest.health import HealthServer, Reply, json_reply
from ingest.kinds import DeviceKind
from ingest.loops import Loops, wait_or_stop
from ingest.pipeline import Pipeline, nothing
from ingest.transports import Delivery, MqttTransport, Transport, TransportError, Transports
from stores.errors import StoreUnavailableError
from stores.influx.client import make_client
from stores.influx.writer import LineWriter
from stores.postgres.engine import make_engine
from stores.postgres.ingest_store import IngestStore
from stores.postgres.migrate import require_current
from stores.postgres.retention import purge

logger = logging.getLogger(__name__)

# A batch as read from a transport, and its decoded items.
Fetched = tuple[list[Delivery], list[Item]]


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestOptions:
    """Tuning of the ingest loop."""

    batch_size: int = 2000
    batch_wait_s: float = 0.05
    retry_initial_s: float = 0.5
    retry_max_s: float = 15.0
    outbox_drain_interval_s: float = 5.0
    report_interval_s: float = 30.0
    # The outbox holds points while InfluxDB is down; past this many, ingest stops taking new
    # messages (their senders keep them) instead of growing PostgreSQL without limit.
    max_outbox_points: int = 5_000_000
    command_tick_s: float = 1.0
    liveness_interval_s: float = 10.0
    offline_after: timedelta = timedelta(seconds=90)
    # Declarations that replace a registered kind's (other dead bands); by kind name.
    kinds: Mapping[str, DeviceKind] = field(default_factory=dict)
    limits: DecodeLimits = field(default_factory=DecodeLimits)
    timing: CommandTiming = field(default_factory=CommandTiming)
    client_id: str | None = None
    health_host: str = "127.0.0.1"
    health_port: int | None = None  # None: no HTTP endpoints
    gauges_interval_s: float = 15.0
    loop_backoff_max_s: float = 60.0  # longest wait after a background loop's failed ticks
    job_check_interval_s: float = 30.0
    job_silence: timedelta = timedelta(minutes=10)  # a job not reported on for this long fails
    rules_sweep_s: float = 5.0  # how often rules' pending and clear durations are checked
    event_link: str = ""  # the dashboard's Events page, for {link} in notifications
    # The fleet-wide loops (housekeeping, jobs, rules' durations, gauges): off in a process
    # that serves one transport beside the main ingest service (the API's WebSocket devices).
    fleet_loops: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.batch_wait_s < 0:
            raise ValueError("batch_size must be >= 1 and batch_wait_s >= 0")
        if self.offline_after <= timedelta(0):
            raise ValueError("offline_after must be positive")


class IngestService:
    """Owns the transports, the pipeline and the loops around them; ``run`` until ``stop``.

    The MQTT transport is built from ``mqtt`` (None: no MQTT); ``transports`` are served
    besides it (their names must differ from ``mqtt``). MQTT comes first: it is the route of
    commands to devices no other transport holds a connection to. A process sends the
    commands of, and watches the liveness of, the devices of its transports only
    (``devices.transport``).
    """

    def __init__(
        self,
        pg: PostgresSettings,
        mqtt: MqttSettings | None,
        influx: InfluxSettings,
        options: IngestOptions | None = None,
        retention: RetentionSettings | None = None,
        *,
        transports: Sequence[Transport] = (),
    ) -> None:
        self._pg = pg
        self._retention = retention
        self._mqtt = mqtt
        self._options = options or IngestOptions()
        mqtt_transport = (
            [] if mqtt is None else [MqttTransport(mqtt, client_id=self._options.client_id)]
        )
        self.transports = Transports([*mqtt_transport, *transports])
        self._served = [t.name for t in self.transports]
        # Liveness: the process with the fleet-wide loops watches every device (a device of
        # a transport whose process is down still goes offline); others their own.
        self._watched = None if self._options.fleet_loops else self._served
        self._store = IngestStore(str(pg.database_url))
        self._influx = make_client(influx)
        self._tracker = CdcTracker(self._options.kinds)
        self._handler = BatchHandler(
            self._store, self._tracker, self._options.timing, link=self._options.event_link
        )
        self._dispatcher = CommandDispatcher(
            str(pg.database_url), self._options.timing, transports=self._served
        )
        self._accepting = asyncio.Event()
        self._accepting.set()
        self.outbox_points = 0
        self._schema_current = False
        self.health: HealthServer | None = None
        if self._options.health_port is not None:
            routes = {"/healthz": self._healthz, "/readyz": self._readyz, "/metrics": self._metrics}
            self.health = HealthServer(routes, self._options.health_host, self._options.health_port)
        decoders = {t.name: t.decoder(self._options.limits) for t in self.transports}
        self.pipeline = Pipeline(
            decoders,
            self._handler,
            self._store,
            LineWriter(self._influx, influx.influx_bucket),
        )
        self.connected = asyncio.Event()  # set while every transport is connected
        # Batches of all transports share the pipeline: one is processed at a time.
        self._processing = asyncio.Lock()
        self._progress = asyncio.Condition()
        self.failure: BaseException | None = None
        self.store_retries = 0
        self.loops = Loops(self.pipeline.metrics, self._options.loop_backoff_max_s)
        self._reported = (0, time.monotonic())
        self._collector = CollectorTamer()
        # A worker of a partitioned stream owns some devices only: their CDC states, their
        # liveness. (One such transport per service: it decides what the process owns.)
        streams = [t.positions for t in self.transports if t.positions is not None]
        if len(streams) > 1:
            raise ValueError("an ingest service reads at most one partitioned stream")
        self._positions = streams[0] if streams else None
        if self._positions is not None:
            self._positions.on_handover(self._handler.seed, self._handler.release)

    @property
    def accepting(self) -> bool:
        """False while intake is paused because the InfluxDB outbox is full."""
        return self._accepting.is_set()

    @property
    def topic_prefix(self) -> str:
        """The topic root the MQTT transport subscribes under."""
        if self._mqtt is None:
            raise AttributeError("this ingest service has no MQTT transport")
        return self._mqtt.topic_prefix

    def check_schema(self) -> None:
        """Refuse to start on an unmigrated database (SchemaError names the fix)."""
        engine = make_engine(self._pg, pool_size=1)
        try:
            require_current(engine)
        finally:
            engine.dispose()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; the batch in hand is finished and acknowledged."""
        await asyncio.to_thread(self.check_schema)
        self._schema_current = True
        if self.health is not None:
            await self.health.start()
        if self._positions is None:
            seeded = await asyncio.to_thread(self._handler.seed)
            logger.info("CDC state seeded for %d devices", seeded)
        # else: a worker loads the states of its partitions' devices when they are assigned.
        # Points an earlier process could not write still wait in the outbox: without this the
        # drainer, which only runs while a backlog is known, would leave them there for good.
        self.pipeline.influx_backlog = await asyncio.to_thread(self._store.outbox_size) > 0
        self._start_loops(stop)
        try:
            await self._serve(stop)
        except Exception as exc:
            self.failure = exc
            async with self._progress:
                self._progress.notify_all()
            raise
        finally:
            stop.set()
            await self.loops.join()
            self._collector.release()
            if self.health is not None:
                await self.health.close()
            await asyncio.to_thread(self._close)

    def _close(self) -> None:
        self.pipeline.close()
        self._store.close()
        self._dispatcher.close()
        self._influx.close()  # type: ignore[no-untyped-call]

    async def _serve(self, stop: asyncio.Event) -> None:
        """Run every transport's connection loop until ``stop``; the first to fail stops the
        others (each finishes and acknowledges its batch in hand) and its error is raised."""
        tasks = [
            asyncio.create_task(self._connect_loop(t, stop), name=f"transport {t.name}")
            for t in self.transports
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        except BaseException:  # cancelled: the loops must not outlive the service
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        stop.set()
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome

    async def _connect_loop(self, transport: Transport, stop: asyncio.Event) -> None:
        delay = self._options.retry_initial_s
        while not stop.is_set():
            try:
                async with transport:
                    self._note_connection()
                    delay = self._options.retry_initial_s
                    await self._consume(transport, stop)
            except TransportError as exc:
                logger.warning(
                    "%s connection lost (%s); reconnecting in %.1fs", transport.name, exc, delay
                )
            finally:
                self._note_connection()
            if await wait_or_stop(stop, delay):
                return
            delay = min(delay * 2, self._options.retry_max_s)

    def _note_connection(self) -> None:
        """``connected`` is set while every transport is."""
        if all(self.transports.connected().values()):
            self.connected.set()
        else:
            self.connected.clear()

    async def _consume(self, transport: Transport, stop: asyncio.Event) -> None:
        """Take batches, process them one at a time, acknowledge each after its commit.

        The next batch is read and decoded while the current one is being processed (the
        worker spends much of a batch waiting on PostgreSQL). Batches still commit in the
        order they were read, so each device's messages stay in order.
        """
        ahead: asyncio.Task[Fetched | None] | None = None
        try:
            while not stop.is_set():
                if not self._accepting.is_set() and await _first(self._accepting, stop) is stop:
                    return
                if ahead is None:
                    ahead = asyncio.create_task(self._fetch(transport, stop))
                fetched = await ahead
                if fetched is None:
                    return
                batch, items = fetched
                ahead = asyncio.create_task(self._fetch(transport, stop))
                async with self._processing:
                    outcome = await self._process(transport, batch, stop, items)
                    if outcome is None:
                        return
                transport.ack(batch, outcome.verdicts)
                async with self._progress:
                    self._progress.notify_all()
        finally:
            if ahead is not None and not ahead.done():
                # Read but not processed: unacknowledged, so its sender delivers it again.
                ahead.cancel()
                await asyncio.gather(ahead, return_exceptions=True)

    async def _fetch(self, transport: Transport, stop: asyncio.Event) -> Fetched | None:
        """The next batch and its decoded items; None when stopped first."""
        options = self._options
        fetch = asyncio.ensure_future(
            transport.next_batch(options.batch_size, options.batch_wait_s)
        )
        stopping = asyncio.ensure_future(stop.wait())
        try:
            done, _ = await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not fetch.done():
                fetch.cancel()  # unacknowledged: its sender delivers it again next time
                await asyncio.gather(fetch, return_exceptions=True)
        if fetch not in done:
            return None
        batch = fetch.result()
        return batch, await asyncio.to_thread(self.pipeline.decode_all, batch)

    async def wait_store_retry(self, timeout_s: float = 10.0) -> None:
        """Wait until a batch has been kept back because PostgreSQL was unreachable."""
        async with asyncio.timeout(timeout_s), self._progress:
            await self._progress.wait_for(lambda: self.store_retries > 0)

    async def wait_processed(self, messages: int, timeout_s: float = 10.0) -> None:
        """Wait until at least ``messages`` device messages are committed and acknowledged,
        and their points were written to InfluxDB or kept in the outbox."""
        async with asyncio.timeout(timeout_s), self._progress:
            await self._progress.wait_for(
                lambda: self.failure is not None or self.pipeline.totals.device_messages >= messages
            )
        if self.failure is not None:
            raise RuntimeError("ingest failed") from self.failure
        # ... and their points handed to InfluxDB (or, if that failed, kept in the outbox).
        await asyncio.to_thread(self.pipeline.flusher.wait_idle, timeout_s)

    async def _process(
        self,
        transport: Transport,
        batch: list[Delivery],
        stop: asyncio.Event,
        items: Sequence[Item],
    ) -> Outcome | None:
        """Process with retries while PostgreSQL is unreachable; None if stopped first."""
        delay = self._options.retry_initial_s
        while True:
            try:
                return await asyncio.to_thread(
                    self.pipeline.process, batch, items, transport.positions
                )
            except StoreUnavailableError as exc:
                logger.warning("%s; batch of %d kept, retry in %.1fs", exc, len(batch), delay)
                self.store_retries += 1
                async with self._progress:
                    self._progress.notify_all()
            if await wait_or_stop(stop, delay):
                return None
            delay = min(delay * 2, self._options.retry_max_s)

    def _start_loops(self, stop: asyncio.Event) -> None:
        options, start = self._options, self.loops.start
        start("collector", FREEZE_EVERY_S, self._collector.tick, stop, first_now=False)
        start("outbox", options.outbox_drain_interval_s, self._drain_outbox, stop, first_now=False)
        start("report", options.report_interval_s, self._report, stop, first_now=False)
        start("dispatch", options.command_tick_s, self._dispatch, stop, first_now=False)
        start("liveness", options.liveness_interval_s, self._liveness, stop, first_now=False)
        if not options.fleet_loops:
            return
        start("gauges", options.gauges_interval_s, self._gauges, stop, first_now=True)
        start("jobs", options.job_check_interval_s, self._jobs, stop, first_now=False)
        start("rules", options.rules_sweep_s, self._rules, stop, first_now=False)
        if self._retention is not None:  # housekeeping is off without retention settings
            interval = self._retention.housekeeping_interval_s
            start("housekeeping", interval, self._housekeeping, stop, first_now=False)

    async def _drain_outbox(self) -> None:
        """Replay the outbox while InfluxDB had failed; pause or resume intake by its size."""
        if not self.pipeline.influx_backlog:
            self.outbox_points = 0
            self._accepting.set()
            return
        await asyncio.to_thread(self.pipeline.drain_outbox)
        self.outbox_points = await asyncio.to_thread(self._store.outbox_size)
        self._apply_outbox_bound()

    def _apply_outbox_bound(self) -> None:
        full = self.outbox_points >= self._options.max_outbox_points
        if full and self._accepting.is_set():
            logger.error(
                "InfluxDB outbox holds %d points (limit %d): pausing intake until it drains",
                self.outbox_points,
                self._options.max_outbox_points,
            )
            self._accepting.clear()
        elif not full and not self._accepting.is_set():
            logger.info("InfluxDB outbox below its limit again: resuming intake")
            self._accepting.set()

    async def _dispatch(self) -> None:
        """Advance command timers and send due commands while a transport is connected."""
        if not any(self.transports.connected().values()):
            return
        await asyncio.to_thread(self._dispatcher.advance_timers, datetime.now(UTC))
        await self._dispatcher.send_due(self.transports.send)

    async def _liveness(self) -> None:
        """Take devices that went silent offline (a device's last will does it at once)."""
        outcome = await self.sweep_now()
        if outcome.accepted or outcome.points_written:
            logger.info("%d device(s) went offline", outcome.points_written)

    async def _healthz(self) -> Reply:
        # A background loop that ended is as fatal as a failed consumer: commands would no
        # longer be sent or devices taken offline, so an orchestrator should restart us.
        stopped = self.loops.stopped()
        alive = self.failure is None and not stopped
        failure = repr(self.failure) if self.failure else None
        return json_reply(alive, {"failure": failure, "loops_stopped": stopped})

    async def _readyz(self) -> Reply:
        checks = {
            "broker": self.connected.is_set(),  # every transport connected
            "schema": self._schema_current,
            "postgresql": await asyncio.to_thread(self._postgres_answers),
            "influxdb": await asyncio.to_thread(self._influx_answers),
            "accepting": self.accepting,
            "loops": not self.loops.stopped(),
        }
        body = {
            "checks": checks,
            "loops": self.loops.status(),
            "transports": self.transports.connected(),
        }
        return json_reply(all(checks.values()), body)

    def _postgres_answers(self) -> bool:
        try:
            with psycopg.connect(str(self._pg.database_url), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def _influx_answers(self) -> bool:
        try:
            return bool(self._influx.ping())
        except Exception:  # noqa: BLE001 - any failure means "not answering"
            return False

    async def _metrics(self) -> Reply:
        body = self.pipeline.metrics.render()
        return Reply(200, body, "text/plain; version=0.0.4; charset=utf-8")

    async def _jobs(self) -> None:
        """Fail the robots' jobs that stopped reporting."""
        failed = await asyncio.to_thread(
            self._store.fail_silent_jobs, datetime.now(UTC), self._options.job_silence
        )
        if failed:
            logger.warning("%d job(s) failed: no report for %s", failed, self._options.job_silence)

    async def _rules(self) -> None:
        """Open the events whose ``for`` ran out, resolve those whose clear duration did,
        when no value arrived to do it (a device gone silent)."""
        effects = await asyncio.to_thread(self._handler.sweep_rules, datetime.now(UTC))
        if effects.opened or effects.resolved:
            logger.info(
                "rules sweep: %d event(s) opened, %d resolved",
                len(effects.opened),
                effects.resolved,
            )

    async def _gauges(self) -> None:
        online, commands = await asyncio.to_thread(self._store.fleet_gauges)
        self.pipeline.metrics.set_fleet(online, commands, self.outbox_points)

    async def _housekeeping(self) -> None:
        """Purge rows past their retention."""
        if self._retention is None:
            return
        removed = await asyncio.to_thread(self._purge, self._retention)
        logger.info("housekeeping removed %s", {k: v for k, v in removed.items() if v} or 0)

    def _purge(self, settings: RetentionSettings) -> dict[str, int]:
        engine = make_engine(self._pg, pool_size=1)
        try:
            return purge(engine, settings, datetime.now(UTC))
        finally:
            engine.dispose()

    async def sweep_now(self, now: datetime | None = None) -> Outcome:
        """Run one liveness sweep immediately, as of ``now`` (tests, operators).

        A worker of a partitioned stream sweeps its own devices only (nothing while it owns
        no partition): their CDC states are its alone to advance.
        """
        share = None if self._positions is None else self._positions.share
        if self._positions is not None and share is None:
            return nothing()
        return await asyncio.to_thread(
            self.pipeline.sweep_silent,
            now or datetime.now(UTC),
            self._options.offline_after,
            self._watched,
            share,
        )

    async def dispatch_now(self, now: datetime | None = None) -> int:
        """Advance timers and send due commands as of ``now``; returns commands sent."""
        if not any(self.transports.connected().values()):
            raise TransportError("no transport is connected")
        when = now or datetime.now(UTC)
        await asyncio.to_thread(self._dispatcher.advance_timers, when)
        sent: int = await self._dispatcher.send_due(self.transports.send, when)
        return sent

    async def _report(self) -> None:
        totals = self.pipeline.totals
        last_count, last_time = self._reported
        now = time.monotonic()
        rate = (totals.messages - last_count) / max(now - last_time, 1e-9)
        self._reported = (totals.messages, now)
        logger.info("ingest: %s", totals.summary(rate))


async def _first(*events: asyncio.Event) -> asyncio.Event:
    """Whichever of ``events`` is set first."""
    waiters = {asyncio.ensure_future(e.wait()): e for e in events}
    done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return waiters[next(iter(done))]
