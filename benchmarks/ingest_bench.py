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
competing for the cores. The exit status is 1 when messages were lost (fewer accounted
than the broker acknowledged), 2 when the run could not be set up.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Literal

import psycopg

from benchmarks import rules as bench_rules
from benchmarks.child import READY, STARTING, STOP, IngestReport, IngestSpec, run_ingest
from benchmarks.probes import (
    Committed,
    CpuMeter,
    LatencyWatcher,
    count_committed,
    our_backends,
    peak_rss_kib,
)
from benchmarks.publisher import Publisher, PublishError, StreamPublisher
from benchmarks.report import Drain, Measurements, RunSetup, render
from benchmarks.sandbox import Sandbox, SandboxError, sandbox
from benchmarks.stream import Stream, StreamShape, build_stream
from benchmarks.wire_publisher import MAX_PACKET_ID, WirePublisher
from fleetwatch import logs
from fleetwatch.settings import (
    InfluxSettings,
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
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
OUTBOX_TIMEOUT_S = 30.0


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
        help="deliveries ingest's MQTT transport holds before batching (default: ingest's own)",
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
    )


# --- the ingest process --------------------------------------------------------------------


def _start_ingest(config: BenchConfig, box: Sandbox) -> tuple[BaseProcess, Connection]:
    """Spawn the ingest process and wait until it is subscribed."""
    process, channel = _spawn_ingest(config, box)
    _await_ready(process, channel)
    return process, channel


def _spawn_ingest(config: BenchConfig, box: Sandbox) -> tuple[BaseProcess, Connection]:
    """Spawn the ingest process and wait until its service starts (imports done)."""
    spec = IngestSpec(
        database_url=box.database_url,
        topic_prefix=box.mqtt.topic_prefix,
        client_id=box.mqtt.mqtt_client_id,
        bucket=box.influx.influx_bucket,
        batch_size=config.batch_size,
        batch_wait_s=config.batch_wait_s,
        log_level=config.log_level,
        profile_dir=config.profile_dir,
        inbox_size=config.ingest_inbox,
    )
    context = multiprocessing.get_context("spawn")
    channel, child_end = context.Pipe()
    process = context.Process(target=run_ingest, args=(spec, child_end), name="bench-ingest")
    process.start()
    child_end.close()
    _expect(process, channel, STARTING, "start")
    return process, channel


def _await_ready(process: BaseProcess, channel: Connection) -> None:
    """Wait until the spawned ingest process is subscribed."""
    _expect(process, channel, READY, "subscribe")
    logger.info("ingest running as pid %d", process.pid)


def _expect(process: BaseProcess, channel: Connection, signal: str, what: str) -> None:
    """Wait for ``signal`` from the ingest process; stop it if something else comes."""
    if not channel.poll(START_TIMEOUT_S):
        _stop_ingest(process, channel)
        raise BenchError(f"ingest did not {what} within {START_TIMEOUT_S:.0f}s")
    answer = channel.recv()
    if answer != signal:
        process.join(STOP_TIMEOUT_S)
        failure = answer.failure if isinstance(answer, IngestReport) else answer
        raise BenchError(f"ingest failed to start: {failure}")


def _stop_ingest(process: BaseProcess, channel: Connection) -> IngestReport | None:
    """Ask ingest to finish its batch and stop; its report, if it sent one."""
    report = None
    try:
        channel.send(STOP)
        if channel.poll(STOP_TIMEOUT_S):
            answer = channel.recv()
            report = answer if isinstance(answer, IngestReport) else None
    except (OSError, EOFError):
        logger.warning("ingest process already gone")
    process.join(STOP_TIMEOUT_S)
    if process.is_alive():
        logger.error("ingest did not stop; terminating pid %d", process.pid)
        process.terminate()
        process.join(STOP_TIMEOUT_S)
    return report


# --- the run -------------------------------------------------------------------------------


def _await_accounted(
    conn: psycopg.Connection[Any],
    publisher: Publisher,
    publishing: threading.Thread | None,
    ingest: BaseProcess,
    stall_timeout_s: float,
) -> tuple[Committed, str | None]:
    """Poll PostgreSQL until every acknowledged message is accounted for; what was seen, and
    why it stopped short (None when it did not). ``publishing`` is the thread still
    publishing, None when publishing is over."""
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
        if not ingest.is_alive():
            return committed, "the ingest process died"
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


def run(config: BenchConfig, box: Sandbox, stream: Stream) -> Measurements:
    """Start ingest, publish the stream, measure until it is all accounted, stop ingest."""
    publisher = _publisher(config, box)
    publisher.prepare(stream.messages)  # before ingest runs: not part of what is measured
    process, channel = _start_ingest(config, box)
    measured = Measurements(published=publisher.result)
    watcher = LatencyWatcher(box.database_url, stream.probe_hostnames, config.probe_interval_s)
    errors: list[BaseException] = []
    publishing = threading.Thread(
        target=_publish, args=(publisher, stream, errors), name="publisher"
    )
    pid = process.pid or 0
    try:
        with psycopg.connect(box.database_url, autocommit=True) as conn:
            cpu = CpuMeter({"ingest": pid, "publisher": os.getpid()}, lambda: our_backends(conn))
            measured.cpu_from = time.time()
            cpu.start()
            watcher.start()
            publishing.start()
            committed, measured.gave_up = _await_accounted(
                conn, publisher, publishing, process, config.stall_timeout_s
            )
            measured.accounted_at = time.time()
            measured.cpu = cpu.stop()
            measured.peak_rss_kib = peak_rss_kib(pid)
            watcher.stop()
            measured.committed = _await_outbox(conn, committed)
        if measured.gave_up:
            logger.error("accounting stopped short: %s", measured.gave_up)
        publishing.join()
        measured.latencies, measured.probes_unseen = watcher.latencies(publisher.result.probes)
        measured.influx_points = _influx_points(box)
    finally:
        try:
            watcher.stop()
        finally:
            measured.ingest = _stop_ingest(process, channel)
    if errors:
        raise BenchError(str(errors[0])) from errors[0]
    return measured


def run_preloaded(config: BenchConfig, box: Sandbox, stream: Stream) -> Measurements:
    """Create ingest's session, publish the stream into the broker while ingest is stopped,
    then start ingest and measure its drain until everything is accounted for."""
    publisher = _publisher(config, box)
    publisher.prepare(stream.messages)
    process, channel = _start_ingest(config, box)
    report = _stop_ingest(process, channel)
    if report is None or report.failure:
        raise BenchError(f"ingest did not stop cleanly: {report.failure if report else 'gone'}")
    logger.info("ingest's session created and left; publishing into the broker")
    measured = Measurements(published=publisher.result)
    errors: list[BaseException] = []
    with psycopg.connect(box.database_url, autocommit=True) as conn:
        cpu = CpuMeter({"publisher": os.getpid()}, lambda: our_backends(conn))
        cpu.start()
        _publish(publisher, stream, errors)
        publish_cpu = cpu.stop()
    if errors:
        raise BenchError(str(errors[0])) from errors[0]
    logger.info("%d messages queued by the broker; starting ingest", publisher.result.acknowledged)
    with psycopg.connect(box.database_url, autocommit=True) as conn:
        spawned = time.time()
        process, channel = _spawn_ingest(config, box)
        pid = process.pid or 0
        try:
            # From the service's start: the interpreter's start-up and imports are left out.
            cpu = CpuMeter({"ingest": pid, "benchmark": os.getpid()}, lambda: our_backends(conn))
            measured.cpu_from = time.time()
            cpu.start()
            measured.drain = Drain(
                spawned=spawned, service_started=measured.cpu_from, publish_cpu=publish_cpu
            )
            _await_ready(process, channel)
            committed, measured.gave_up = _await_accounted(
                conn, publisher, None, process, config.stall_timeout_s
            )
            measured.accounted_at = time.time()
            measured.cpu = cpu.stop()
            measured.peak_rss_kib = peak_rss_kib(pid)
            measured.committed = _await_outbox(conn, committed)
            if measured.gave_up:
                logger.error("accounting stopped short: %s", measured.gave_up)
            measured.influx_points = _influx_points(box)
        finally:
            measured.ingest = _stop_ingest(process, channel)
    return measured


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every message was accounted for."""
    config = parse_args(argv)
    logs.configure(config.log_level)
    try:
        pg, mqtt, influx = load(PostgresSettings), load(MqttSettings), load(InfluxSettings)
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
        measured = _one_run(run_config, pg, mqtt, influx)
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
    return measured.ingest.sustained_rate if measured.ingest else None


def _relative_cpu(measured: Measurements) -> float | None:
    ingest, publisher = measured.cpu.get("ingest"), measured.cpu.get("publisher")
    return ingest / publisher if ingest and publisher else None


def _one_run(
    config: BenchConfig, pg: PostgresSettings, mqtt: MqttSettings, influx: InfluxSettings
) -> Measurements | None:
    """One stream through its own sandbox, its report printed; None if it could not run."""
    started = time.perf_counter()
    try:
        with sandbox(pg, mqtt, influx, keep=config.keep) as box:
            if config.rules:
                enabled = bench_rules.install(box.database_url, config.rules)
                logger.info("%d alerting rules enabled", enabled)
            stream = build_stream(
                config.shape, TopicScheme(box.mqtt.topic_prefix), int(time.time() * 1000)
            )
            logger.info(
                "built %d messages in %.1fs: %s",
                len(stream.messages),
                time.perf_counter() - started,
                dict(stream.counts),
            )
            measured = (run_preloaded if config.preload else run)(config, box, stream)
    except (BenchError, SandboxError, StoreError) as exc:
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
    )
    print(render(setup, stream, measured))
    if config.profile_dir:
        print(f"profiles written to {config.profile_dir}/ingest-{{worker,loop}}.pstats")
    return measured


if __name__ == "__main__":
    raise SystemExit(main())
