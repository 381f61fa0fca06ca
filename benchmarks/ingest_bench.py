"""Ingest benchmark: a simulated fleet through the real broker into the real stores.

    python -m benchmarks.ingest_bench --devices 1000 --messages 200000

Creates a database, bucket, topic prefix and MQTT client ids of its own; starts the real
``IngestService`` in a separate (spawned) process; publishes a mixed stream (one status per
device, then mostly heartbeats, some alarms and statuses, see ``benchmarks.stream``) at QoS 1
from this process; polls PostgreSQL every 0.5 s until every published message is accounted
for; then prints a summary.

With ``--preload`` ingest is started once (its persistent session then exists) and stopped,
the whole stream is published into the broker, which keeps it for that session, and only
then is ingest started again: the drain is timed from that start, with no publisher
competing for the cores.

With ``--source kafka --workers N`` the stream takes the scaled-out path: publisher ->
broker -> ``fleetwatch bridge`` (a child process) -> a Kafka topic of the run's own ->
N ingest workers of one consumer group (child processes, ``--source kafka``) -> the stores.
With ``--preload`` the stream is put into the topic through the broker and the bridge while
no worker runs, then the N workers are started and their drain is timed. The panels are
then registered in the database beforehand: workers register devices in the order of their
partitions, not of publishing, and a panel reporting another id than the one it was given
is sent SET_DEVICE_ID, work the single-process run does not have.

The exit status is 1 when messages were lost (fewer accounted than the broker
acknowledged), 2 when the run could not be set up.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import psycopg

from benchmarks import rules as bench_rules
from benchmarks.child import (
    BridgeReport,
    BridgeSpec,
    IngestReport,
    IngestSpec,
    combined_rate,
    run_bridge,
    run_ingest,
)
from benchmarks.children import Child, ChildError, await_ready, await_started, stop_all
from benchmarks.probes import (
    Committed,
    CpuMeter,
    LatencyWatcher,
    count_committed,
    listening_pid,
    our_backends,
    peak_rss_kib,
)
from benchmarks.publisher import Publisher, PublishError, StreamPublisher
from benchmarks.report import Drain, Measurements, RunSetup, render
from benchmarks.sandbox import Sandbox, SandboxError, register_panels, sandbox
from benchmarks.stream import Stream, StreamShape, build_stream
from benchmarks.stream_topic import (
    StreamTopicError,
    await_backlog,
    await_group,
    backlog,
    stream_topic,
)
from benchmarks.wire_publisher import MAX_PACKET_ID, WirePublisher
from fleetwatch import logs
from fleetwatch.settings import (
    InfluxSettings,
    KafkaSettings,
    MqttSettings,
    PostgresSettings,
    SettingsError,
    load,
)
from ingest.contract import TopicScheme
from stores.errors import StoreError
from stores.influx import make_client
from stores.influx.flux_library import load_query, run_flux

logger = logging.getLogger(__name__)

FLUX_DIR = Path(__file__).parent  # heartbeat_points.flux
ACCOUNT_INTERVAL_S = 0.5
PROGRESS_LOG_S = 5.0
OUTBOX_TIMEOUT_S = 30.0
GROUP_TIMEOUT_S = 60.0  # for the workers' consumer group to settle before a paced run


class BenchError(RuntimeError):
    """The benchmark could not run (as opposed to ingest losing messages)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchConfig:
    """Command-line choices."""

    shape: StreamShape
    rate: float
    window: int
    batch_size: int
    batch_wait_s: float
    probe_interval_s: float
    stall_timeout_s: float
    keep: bool
    profile_dir: str | None
    log_level: str
    compare: bool = False
    rounds: int = 1
    rules: int = 0  # enabled alerting rules (built-ins included); 0 for none
    compare_rules: bool = False
    publisher: Literal["wire", "paho"] = "wire"
    preload: bool = False  # publish everything while ingest is stopped, then time the drain
    ingest_inbox: int = 0  # ingest's MQTT inbox size; 0: ingest's default
    source: Literal["mqtt", "kafka"] = "mqtt"
    workers: int = 1  # ingest workers of the consumer group (kafka)
    partitions: int = 12  # of the run's Kafka topic
    preregister: bool = False  # register the panels before ingest starts (always on Kafka)


def parse_args(argv: Sequence[str] | None) -> BenchConfig:
    """The benchmark's options."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ingest_bench",
        description="Publish a simulated fleet through the broker and measure ingest.",
    )
    parser.add_argument("--devices", type=int, default=1000, help="simulated panels")
    parser.add_argument("--messages", type=int, default=200_000, help="messages in all")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="publish at most this many msg/s (0: unpaced)"
    )
    parser.add_argument("--window", type=int, default=1000, help="publisher messages in flight")
    parser.add_argument("--batch-size", type=int, default=2000, help="ingest batch size")
    parser.add_argument("--batch-wait-ms", type=float, default=50, help="ingest batch wait")
    parser.add_argument("--alarm-share", type=float, default=0.005, help="share of alarms")
    parser.add_argument("--status-share", type=float, default=0.005, help="share of statuses")
    parser.add_argument(
        "--probe-devices", type=int, default=50, help="devices whose heartbeats time latency"
    )
    parser.add_argument("--probe-interval-ms", type=float, default=20, help="latency poll")
    parser.add_argument(
        "--stall-timeout", type=float, default=60, help="give up after this long without progress"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed of the stream")
    parser.add_argument("--keep", action="store_true", help="keep the database and bucket")
    parser.add_argument("--profile", metavar="DIR", help="cProfile ingest; write .pstats here")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    parser.add_argument(
        "--telemetry-share",
        type=float,
        default=0.0,
        help="share of the devices that are telemetry devices (JSON readings), 0-1",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="run the panel-only stream first, then the mixed one, and compare their rates",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="with --compare: how many panel-only/mixed pairs to run, alternating",
    )
    parser.add_argument(
        "--rules",
        type=int,
        default=0,
        help="enabled alerting rules ingest evaluates (the built-ins and a zone/fleet mix)",
    )
    parser.add_argument(
        "--compare-rules",
        action="store_true",
        help="run without rules, then with --rules, and compare their rates (--rounds pairs)",
    )
    parser.add_argument(
        "--publisher",
        choices=["wire", "paho"],
        default="wire",
        help="wire: pre-encoded packets over a plain socket, a few µs of CPU per message; "
        "paho: paho-mqtt's client, ~80 µs per message",
    )
    parser.add_argument(
        "--preload",
        action="store_true",
        help="publish the whole stream while ingest is stopped (its session queues it in the "
        "broker), then start ingest and time the drain",
    )
    parser.add_argument(
        "--ingest-inbox",
        type=int,
        default=0,
        metavar="N",
        help="deliveries ingest's transport holds before batching (default: ingest's own)",
    )
    parser.add_argument(
        "--source",
        choices=["mqtt", "kafka"],
        default="mqtt",
        help="mqtt: one ingest process subscribed to the broker; kafka: the broker's "
        "messages through a bridge into a Kafka topic of the run's own, read by --workers "
        "ingest workers (FLEETWATCH_KAFKA_BOOTSTRAP_SERVERS)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="ingest workers of the consumer group (kafka)"
    )
    parser.add_argument(
        "--partitions", type=int, default=12, help="partitions of the run's Kafka topic"
    )
    parser.add_argument(
        "--preregister",
        action="store_true",
        help="register the panels in the database before ingest starts, in the order of "
        "the ids they report (always so with --source kafka)",
    )
    args = parser.parse_args(argv)
    try:
        shape = StreamShape(
            devices=args.devices,
            messages=args.messages,
            alarm_share=args.alarm_share,
            status_share=args.status_share,
            probe_devices=args.probe_devices,
            seed=args.seed,
            telemetry_share=args.telemetry_share,
        )
    except ValueError as exc:
        parser.error(str(exc))
    if args.compare and not args.telemetry_share:
        parser.error("--compare needs a --telemetry-share to compare with")
    if args.compare_rules and (args.compare or not args.rules):
        parser.error("--compare-rules needs --rules N, and not --compare")
    if args.preload and (args.rate or args.compare or args.compare_rules):
        parser.error("--preload times the drain alone: not with --rate, --compare, --compare-rules")
    if args.publisher == "wire" and not 1 <= args.window < MAX_PACKET_ID:
        parser.error(f"--window must be within [1, {MAX_PACKET_ID - 1}] (MQTT packet ids)")
    if args.workers < 1 or (args.workers > 1 and args.source != "kafka"):
        parser.error("--workers N needs --source kafka (one MQTT ingest process at a time)")
    if args.source == "kafka" and not args.workers <= args.partitions <= 10_000:
        parser.error("--partitions must be at least --workers (and at most 10,000)")
    return BenchConfig(
        shape=shape,
        rate=args.rate,
        window=args.window,
        batch_size=args.batch_size,
        batch_wait_s=args.batch_wait_ms / 1000,
        probe_interval_s=args.probe_interval_ms / 1000,
        stall_timeout_s=args.stall_timeout,
        keep=args.keep,
        profile_dir=args.profile,
        log_level=args.log_level,
        compare=args.compare,
        rounds=max(args.rounds, 1),
        rules=args.rules,
        compare_rules=args.compare_rules,
        publisher=args.publisher,
        preload=args.preload,
        ingest_inbox=max(args.ingest_inbox, 0),
        source=args.source,
        workers=args.workers,
        partitions=args.partitions,
        preregister=args.preregister or args.source == "kafka",
    )


# --- the child processes ------------------------------------------------------------------


Ingests = list[Child[IngestReport]]


def _spawn_ingest(config: BenchConfig, box: Sandbox, kafka: KafkaSettings | None) -> Ingests:
    """Spawn the ingest process (or, on Kafka, the workers), and wait until their services
    start (imports done)."""
    names = ["ingest"] if kafka is None else [f"ingest-{n}" for n in range(1, config.workers + 1)]
    children = [
        Child.spawn(
            name,
            run_ingest,
            IngestSpec(
                database_url=box.database_url,
                topic_prefix=box.mqtt.topic_prefix,
                client_id=box.mqtt.mqtt_client_id,
                bucket=box.influx.influx_bucket,
                batch_size=config.batch_size,
                batch_wait_s=config.batch_wait_s,
                log_level=config.log_level,
                profile_dir=config.profile_dir,
                inbox_size=config.ingest_inbox,
                name=name,
                kafka=kafka,
            ),
            IngestReport,
        )
        for name in names
    ]
    return await_started(children)


def _start_ingest(config: BenchConfig, box: Sandbox, kafka: KafkaSettings | None) -> Ingests:
    """Spawn the ingest processes and wait until they are subscribed (MQTT) or have joined
    the consumer group (Kafka)."""
    return await_ready(_spawn_ingest(config, box, kafka))


def _start_bridge(config: BenchConfig, box: Sandbox, kafka: KafkaSettings) -> Child[BridgeReport]:
    """Spawn the bridge and wait until it is subscribed to the broker."""
    spec = BridgeSpec(
        topic_prefix=box.mqtt.topic_prefix,
        client_id=box.bridge_id,
        kafka=kafka,
        log_level=config.log_level,
    )
    return await_ready(await_started([Child.spawn("bridge", run_bridge, spec, BridgeReport)]))[0]


def _stop_ingest(children: Ingests) -> dict[str, IngestReport]:
    """Stop the ingest processes; their reports, of every one that sent one."""
    reports = stop_all(children)
    for child in children:
        if child.name not in reports:
            logger.error("%s sent no report", child.name)
    return reports


def _broker_pid(kafka: KafkaSettings | None) -> dict[str, int]:
    """The Kafka broker's process, when it runs on this machine (its CPU is counted)."""
    if kafka is None:
        return {}
    port = int(kafka.kafka_bootstrap_servers.split(",")[0].rsplit(":", 1)[1])
    pid = listening_pid(port)
    if pid is None:
        logger.warning("no local process listens on Kafka's port %d: its CPU is not counted", port)
        return {}
    logger.info("Kafka broker: pid %d", pid)
    return {"kafka": pid}


# --- the run -------------------------------------------------------------------------------


def _await_accounted(
    conn: psycopg.Connection[Any],
    publisher: Publisher,
    publishing: threading.Thread | None,
    processes: Sequence[Child[IngestReport] | Child[BridgeReport]],
    stall_timeout_s: float,
) -> tuple[Committed, str | None]:
    """Poll PostgreSQL until every acknowledged message is accounted for; what was seen, and
    why it stopped short (None when it did not). ``publishing`` is the thread still
    publishing, None when publishing is over; ``processes`` must stay alive."""
    last_change = last_log = time.monotonic()
    seen = -1
    while True:
        committed = count_committed(conn)
        now = time.monotonic()
        done_publishing = publishing is None or not publishing.is_alive()
        published = publisher.result.acknowledged
        if done_publishing and committed.messages >= published:
            return committed, None
        if committed.messages != seen:
            seen, last_change = committed.messages, now
        elif done_publishing and now - last_change > stall_timeout_s:
            return committed, f"no progress for {stall_timeout_s:.0f} s"
        for process in processes:
            if not process.is_alive():
                return committed, f"the {process.name} process died"
        if now - last_log >= PROGRESS_LOG_S:
            last_log = now
            logger.info(
                "published %d (acknowledged %d), committed %d",
                publisher.result.sent,
                published,
                committed.messages,
            )
        time.sleep(ACCOUNT_INTERVAL_S)


def _await_outbox(conn: psycopg.Connection[Any], committed: Committed) -> Committed:
    """Wait until InfluxDB has confirmed every point (so the Flux count can be compared)."""
    deadline = time.monotonic() + OUTBOX_TIMEOUT_S
    while committed.outbox and time.monotonic() < deadline:
        time.sleep(0.2)
        committed = count_committed(conn)
    return committed


def _influx_points(box: Sandbox) -> int | None:
    """Heartbeat points in the run's bucket, counted by InfluxDB itself."""
    query = load_query("heartbeat_points", folder=FLUX_DIR)
    try:
        with make_client(box.influx) as client:
            frame = run_flux(client, query.render({"bucket": box.influx.influx_bucket}))
    except StoreError:
        logger.exception("InfluxDB point count failed")
        return None
    return int(frame["_value"].sum()) if "_value" in frame.columns else 0


def _publisher(config: BenchConfig, box: Sandbox) -> Publisher:
    rate = 0.0 if config.preload else config.rate
    if config.publisher == "paho":
        return StreamPublisher(box.mqtt, box.publisher_id, window=config.window, rate=rate)
    return WirePublisher(box.mqtt, box.publisher_id, window=config.window, rate=rate)


def _publish(publisher: Publisher, stream: Stream, errors: list[BaseException]) -> None:
    try:
        publisher.run(stream.messages)
    except (PublishError, OSError) as exc:
        logger.error("publishing failed: %s", exc)
        errors.append(exc)


def run(
    config: BenchConfig, box: Sandbox, stream: Stream, kafka: KafkaSettings | None
) -> Measurements:
    """Start ingest (on Kafka: the bridge and the workers), publish the stream, measure until
    it is all accounted, stop ingest."""
    publisher = _publisher(config, box)
    publisher.prepare(stream.messages)  # before ingest runs: not part of what is measured
    measured = Measurements(published=publisher.result)
    watcher = LatencyWatcher(box.database_url, stream.probe_hostnames, config.probe_interval_s)
    errors: list[BaseException] = []
    publishing = threading.Thread(
        target=_publish, args=(publisher, stream, errors), name="publisher"
    )
    with ExitStack() as stack:
        bridge = None
        if kafka is not None:
            bridge = _start_bridge(config, box, kafka)
            stack.callback(_keep_bridge_report, measured, bridge)
        children = _start_ingest(config, box, kafka)
        stack.callback(_keep_ingest_reports, measured, children)
        stack.callback(watcher.stop)
        if kafka is not None:  # every worker owns its partitions before the first publish
            await_group(kafka, len(children), GROUP_TIMEOUT_S)
        pids = {child.name: child.pid for child in children}
        if bridge is not None:
            pids["bridge"] = bridge.pid
        with psycopg.connect(box.database_url, autocommit=True) as conn:
            cpu = CpuMeter(
                {**pids, "publisher": os.getpid(), **_broker_pid(kafka)},
                lambda: our_backends(conn),
            )
            measured.cpu_from = time.time()
            cpu.start()
            watcher.start()
            publishing.start()
            alive: list[Child[IngestReport] | Child[BridgeReport]] = [*children]
            alive += [bridge] if bridge else []
            committed, measured.gave_up = _await_accounted(
                conn, publisher, publishing, alive, config.stall_timeout_s
            )
            measured.accounted_at = time.time()
            measured.cpu = cpu.stop()
            measured.peak_rss_kib = _peak_rss(children)
            watcher.stop()
            measured.committed = _await_outbox(conn, committed)
        if measured.gave_up:
            logger.error("accounting stopped short: %s", measured.gave_up)
        publishing.join()
        measured.latencies, measured.probes_unseen = watcher.latencies(publisher.result.probes)
        measured.influx_points = _influx_points(box)
    if errors:
        raise BenchError(str(errors[0])) from errors[0]
    return measured


def _keep_ingest_reports(measured: Measurements, children: Ingests) -> None:
    measured.workers = _stop_ingest(children)


def _keep_bridge_report(measured: Measurements, bridge: Child[BridgeReport]) -> None:
    measured.bridge = bridge.stop()


def _peak_rss(children: Ingests) -> dict[str, int]:
    peaks = {child.name: peak_rss_kib(child.pid) for child in children}
    return {name: kib for name, kib in peaks.items() if kib is not None}


def run_preloaded(
    config: BenchConfig, box: Sandbox, stream: Stream, kafka: KafkaSettings | None
) -> Measurements:
    """Put the whole stream where ingest will find it while ingest is stopped (the broker
    keeps it for ingest's session; on Kafka, the bridge puts it in the topic), then start
    ingest (the workers) and measure the drain until everything is accounted for."""
    publisher = _publisher(config, box)
    publisher.prepare(stream.messages)
    measured = Measurements(published=publisher.result)
    if kafka is None:
        _create_session(config, box)
        publish_cpu, publish_s = _preload(config, publisher, stream, box, None)
    else:
        bridge = _start_bridge(config, box, kafka)
        try:
            publish_cpu, publish_s = _preload(config, publisher, stream, box, (bridge, kafka))
            measured.kafka_records = backlog(kafka)
        finally:
            measured.bridge = bridge.stop()  # idle from here on: not part of the drain
    logger.info("%d messages wait for ingest; starting it", publisher.result.acknowledged)
    with psycopg.connect(box.database_url, autocommit=True) as conn:
        spawned = time.time()
        children = _spawn_ingest(config, box, kafka)
        try:
            # From the services' start: the interpreters' start-up and imports are left out.
            pids = {child.name: child.pid for child in children}
            cpu = CpuMeter(
                {**pids, "benchmark": os.getpid(), **_broker_pid(kafka)},
                lambda: our_backends(conn),
            )
            measured.cpu_from = time.time()
            cpu.start()
            measured.drain = Drain(
                spawned=spawned,
                service_started=measured.cpu_from,
                publish_cpu=publish_cpu,
                publish_s=publish_s,
            )
            await_ready(children)
            committed, measured.gave_up = _await_accounted(
                conn, publisher, None, children, config.stall_timeout_s
            )
            measured.accounted_at = time.time()
            measured.cpu = cpu.stop()
            measured.peak_rss_kib = _peak_rss(children)
            measured.committed = _await_outbox(conn, committed)
            if measured.gave_up:
                logger.error("accounting stopped short: %s", measured.gave_up)
            measured.influx_points = _influx_points(box)
        finally:
            measured.workers = _stop_ingest(children)
    return measured


def _create_session(config: BenchConfig, box: Sandbox) -> None:
    """Start ingest once and stop it, so that the broker keeps a session for it."""
    reports = _stop_ingest(_start_ingest(config, box, None))
    report = reports.get("ingest")
    if report is None or report.failure:
        raise BenchError(f"ingest did not stop cleanly: {report.failure if report else 'gone'}")
    logger.info("ingest's session created and left; publishing into the broker")


def _preload(
    config: BenchConfig,
    publisher: Publisher,
    stream: Stream,
    box: Sandbox,
    bridged: tuple[Child[BridgeReport], KafkaSettings] | None,
) -> tuple[dict[str, float], float]:
    """Publish the stream with no ingest running; the CPU seconds it took by process and
    how long (on Kafka: until the topic holds every message the broker acknowledged)."""
    errors: list[BaseException] = []
    pids = {"publisher": os.getpid()}
    if bridged is not None:
        pids["bridge"] = bridged[0].pid
    kafka = bridged[1] if bridged else None
    with psycopg.connect(box.database_url, autocommit=True) as conn:
        cpu = CpuMeter({**pids, **_broker_pid(kafka)}, lambda: our_backends(conn))
        cpu.start()
        _publish(publisher, stream, errors)
        if errors:
            raise BenchError(str(errors[0])) from errors[0]
        done = publisher.result.finished
        if kafka is not None:
            await_backlog(kafka, publisher.result.acknowledged, config.stall_timeout_s)
            done = time.time()
        return cpu.stop(), done - publisher.result.started


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every message was accounted for."""
    config = parse_args(argv)
    logs.configure(config.log_level)
    try:
        pg, mqtt, influx = load(PostgresSettings), load(MqttSettings), load(InfluxSettings)
        kafka = load(KafkaSettings) if config.source == "kafka" else None
    except SettingsError as exc:
        logger.error("%s", exc)
        return 2
    configs = [config]
    if config.compare:  # the same machine, alternating: the panel-only figure first
        panels = replace(config.shape, telemetry_share=0.0)
        configs = [replace(config, shape=panels), config] * config.rounds
    elif config.compare_rules:  # alternating: the figure without rules first
        configs = [replace(config, rules=0), config] * config.rounds
    runs: list[Measurements] = []
    for run_config in configs:
        measured = _one_run(run_config, pg, mqtt, influx, kafka)
        if measured is None:
            return 2
        if measured.missing:
            return 1
        runs.append(measured)
    if config.compare:
        print(_comparison(f"mixed fleet ({config.shape.telemetry_share:.0%} telemetry "
                          "devices) against panel-only", runs))  # fmt: skip
    elif config.compare_rules:
        print(_comparison(f"{config.rules} enabled rules against none", runs))
    return 0


def _comparison(title: str, runs: Sequence[Measurements]) -> str:
    """Each round's second rate as a share of its first (the baseline), and the ingest CPU
    per message relative to the publisher's: the publisher's work is the same in every run,
    so the ratio stays put when the machine itself speeds up or slows down between runs."""
    lines = [f"{title}, per round:"]
    ratios, costs = [], []
    for n, (panels, mixed) in enumerate(zip(runs[::2], runs[1::2], strict=True), start=1):
        rate_p, rate_m = _rate(panels), _rate(mixed)
        cost_p, cost_m = _relative_cpu(panels), _relative_cpu(mixed)
        ratio = rate_m / rate_p if rate_p and rate_m else None
        cost = cost_m / cost_p if cost_p and cost_m else None
        ratios += [ratio] if ratio else []
        costs += [cost] if cost else []
        lines.append(
            f"  round {n}: {rate_m or 0:,.0f} / {rate_p or 0:,.0f} msg/s = "
            f"{ratio or 0:.1%}; ingest CPU per publisher CPU {cost_m or 0:.2f} / "
            f"{cost_p or 0:.2f} = {cost or 0:.1%}"
        )
    if ratios and costs:
        lines.append(
            f"  median: throughput {statistics.median(ratios):.1%} of the baseline, "
            f"ingest CPU {statistics.median(costs):.1%} of the baseline (publisher-normalised)"
        )
    return "\n".join(lines)


def _rate(measured: Measurements) -> float | None:
    return combined_rate(list(measured.workers.values()))


def _relative_cpu(measured: Measurements) -> float | None:
    ingest = sum(measured.cpu.get(name, 0.0) for name in measured.workers)
    publisher = measured.cpu.get("publisher")
    return ingest / publisher if ingest and publisher else None


def _one_run(
    config: BenchConfig,
    pg: PostgresSettings,
    mqtt: MqttSettings,
    influx: InfluxSettings,
    kafka: KafkaSettings | None,
) -> Measurements | None:
    """One stream through its own sandbox (and Kafka topic), its report printed; None if it
    could not run."""
    began = time.perf_counter()
    try:
        with ExitStack() as stack:
            box = stack.enter_context(sandbox(pg, mqtt, influx, keep=config.keep))
            topic = None
            if kafka is not None:
                topic = stack.enter_context(
                    stream_topic(kafka, box.run_id, config.partitions, keep=config.keep)
                )
            if config.rules:
                enabled = bench_rules.install(box.database_url, config.rules)
                logger.info("%d alerting rules enabled", enabled)
            stream = build_stream(
                config.shape, TopicScheme(box.mqtt.topic_prefix), int(time.time() * 1000)
            )
            logger.info(
                "built %d messages in %.1fs: %s",
                len(stream.messages),
                time.perf_counter() - began,
                dict(stream.counts),
            )
            if config.preregister:
                register_panels(box, stream.registrations)
            measured = (run_preloaded if config.preload else run)(config, box, stream, topic)
    except (BenchError, ChildError, SandboxError, StoreError, StreamTopicError) as exc:
        logger.error("benchmark failed: %s", exc)
        return None
    setup = RunSetup(
        devices=config.shape.devices,
        messages=config.shape.messages,
        rate=config.rate,
        window=config.window,
        probe_interval_s=config.probe_interval_s,
        telemetry_devices=config.shape.telemetry_devices,
        publisher=config.publisher,
        preload=config.preload,
        ingest_inbox=config.ingest_inbox,
        source=config.source,
        workers=config.workers,
        partitions=config.partitions,
        preregistered=config.preregister,
    )
    print(render(setup, stream, measured))
    if config.profile_dir:
        names = ",".join(measured.workers) or "ingest"
        print(f"profiles written to {config.profile_dir}/{{{names}}}-{{worker,loop}}.pstats")
    return measured


if __name__ == "__main__":
    raise SystemExit(main())
