"""The benchmark's results and their summary table.

On Kafka the table also has the bridge's counts, each worker's share, and a projection of
the capacity that another machine of workers adds (see ``_projection`` for the model).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

from benchmarks.child import BridgeReport, IngestReport, combined_rate
from benchmarks.probes import Committed, percentile
from benchmarks.publisher import PublishResult
from benchmarks.stream import Stream
from ingest.contract import TopicKind

LABEL = 34  # width of the first column
CPU_ORDER = (
    "ingest",
    "postgres",
    "mosquitto",
    "influxd",
    "kafka",
    "bridge",
    "publisher",
    "benchmark",
)
WORKER_CORES = 2  # the cores of a machine of workers, in the projection


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSetup:
    """What was asked for, as the report states it."""

    devices: int
    messages: int
    rate: float
    window: int
    probe_interval_s: float
    telemetry_devices: int = 0
    publisher: str = "wire"
    preload: bool = False
    ingest_inbox: int = 0  # 0: ingest's default
    source: str = "mqtt"  # or "kafka": publisher -> broker -> bridge -> Kafka -> workers
    workers: int = 1
    partitions: int = 0  # of the run's Kafka topic
    preregistered: bool = False  # panels registered in the database before the run


@dataclass(frozen=True, slots=True, kw_only=True)
class Drain:
    """A preloaded run's timeline: the stream was published while ingest was stopped, and
    the broker held it for ingest's session (or, on Kafka, the bridge put it in the topic)
    until ingest was started again."""

    spawned: float  # time.time() when the (first) ingest process was started
    service_started: float  # when its (their) service began connecting: imports done
    publish_cpu: dict[str, float]  # CPU seconds while the stream was published into the broker
    publish_s: float = 0.0  # wall time of that: to the last PUBACK, or on Kafka the last record


@dataclass(slots=True)
class Measurements:
    """Everything the summary reports."""

    published: PublishResult
    committed: Committed = field(default_factory=Committed)
    gave_up: str | None = None  # why accounting stopped short, if it did
    accounted_at: float = 0.0  # time.time() when everything was accounted (or it gave up)
    latencies: list[float] = field(default_factory=list)
    probes_unseen: int = 0
    influx_points: int | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    cpu_from: float = 0.0  # time.time() when ``cpu`` started counting
    drain: Drain | None = None  # preloaded runs only
    peak_rss_kib: dict[str, int] = field(default_factory=dict)  # by ingest process
    workers: dict[str, IngestReport] = field(default_factory=dict)  # by ingest process name
    bridge: BridgeReport | None = None
    kafka_records: int | None = None  # records in the topic once preloaded

    @property
    def missing(self) -> int:
        """Messages the broker acknowledged that PostgreSQL does not account for."""
        return max(0, self.published.acknowledged - self.committed.messages)


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _s(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if abs(seconds) < 1 else f"{seconds:.2f} s"


def _row(label: str, value: str, note: str = "") -> str:
    return f"{label:<{LABEL}}{value}" + (f"   ({note})" if note else "")


def _messages(stream: Stream, m: Measurements) -> list[str]:
    pub, got = m.published, m.committed
    # QoS 1 on one connection: the broker acknowledges in publishing order.
    acked = Counter(message.kind for message in stream.messages[: pub.acknowledged])
    lines = [f"{'messages':<{LABEL}}{'published':>12}{'committed':>12}"]
    for kind, committed in (
        (TopicKind.STATUS, got.statuses),
        (TopicKind.HEARTBEAT, got.heartbeats),
        (TopicKind.ALARM, got.alarms),
        (TopicKind.TELEMETRY, got.readings),
    ):
        if kind is TopicKind.TELEMETRY and not acked[kind] and not committed:
            continue
        lines.append(f"  {kind.value:<{LABEL - 2}}{_n(acked[kind]):>12}{_n(committed):>12}")
    lines.append(f"  {'dead letters':<{LABEL - 2}}{'':>12}{_n(got.dead_letters):>12}")
    verdict = f"MISSING {_n(m.missing)}" if m.missing else "all accounted for"
    lines.append(
        f"  {'total':<{LABEL - 2}}{_n(pub.acknowledged):>12}{_n(got.messages):>12}   {verdict}"
    )
    if got.unsynced:
        lines.append(f"  ({_n(got.unsynced)} of {_n(got.devices)} devices not synced to their id)")
    return lines


def _timing(setup: RunSetup, m: Measurements) -> list[str]:
    pub = m.published
    if m.drain and setup.source == "kafka":
        took = m.drain.publish_s or pub.duration_s
        publish = _row(
            "publish rate (into Kafka, no worker)",
            f"{_n(pub.acknowledged / took):>12} msg/s",
            f"{_s(took)} to the last record in Kafka, through the broker and the bridge; "
            f"{_s(pub.duration_s)} to the last PUBACK",
        )
    else:
        publish = _row(
            "publish rate (ingest stopped)" if m.drain else "publish rate",
            f"{_n(pub.acknowledged / pub.duration_s):>12} msg/s",
            f"{_s(pub.duration_s)} to the last PUBACK, QoS 1, window {setup.window}"
            + ("; queued by the broker" if m.drain else ""),
        )
    lines = [publish, *_sustained(m)]
    if m.drain:
        return lines + _drain(m, m.drain)
    waited = m.accounted_at - pub.started
    if m.gave_up:
        lines.append(_row("accounting gave up after", f"{_s(waited):>18}", m.gave_up))
    else:
        lines.append(_row("all committed after", f"{_s(waited):>18}", "from the first publish"))
    if m.latencies:
        quantiles = "  ".join(
            f"{name} {_s(percentile(m.latencies, q))}"
            for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
        )
        lines.append(
            _row(
                "publish to commit latency",
                f"{quantiles}  max {_s(max(m.latencies))}",
                f"{_n(len(m.latencies))} probes, {_n(m.probes_unseen)} unseen, "
                f"read every {setup.probe_interval_s * 1000:.0f} ms",
            )
        )
    return lines


def _sustained(m: Measurements) -> list[str]:
    """The rate of every ingest process together, and of each when there are several."""
    reports = list(m.workers.values())
    rate = combined_rate(reports)
    commits = [at for report in reports for at, _ in report.commits]
    if rate is None:
        return []
    messages = sum(report.messages for report in reports)
    batches = max(sum(report.batches for report in reports), 1)
    topics = sum(report.batch_topics for report in reports)
    lines = [
        _row(
            "sustained ingest rate",
            f"{_n(rate):>12} msg/s",
            f"first to last commit {_s(max(commits) - min(commits))}; {_n(batches)} batches, "
            f"{messages / batches:,.0f} messages from {topics / batches:,.0f} topics each "
            "on average",
        )
    ]
    if len(reports) > 1:
        lines.append(_row("  per worker", f"{_n(rate / len(reports)):>12} msg/s", "the mean"))
    for name, report in m.workers.items() if len(reports) > 1 else ():
        own = report.sustained_rate
        cpu = m.cpu.get(name)
        wall = m.accounted_at - m.cpu_from if m.cpu_from else 0.0
        busy = f"; CPU {cpu:.1f} s, {cpu / wall:.0%} of a core" if cpu and wall > 0 else ""
        lines.append(
            _row(
                f"  {name}",
                f"{_n(own or 0):>12} msg/s",
                f"{_n(report.messages)} messages, its first to last commit; "
                f"{_partitions(report)}{busy}",
            )
        )
    return lines


def _partitions(report: IngestReport) -> str:
    if not report.assignments:
        return "no partitions"
    owned = report.assignments[-1][1]
    times = len(report.assignments)
    return f"{owned} partitions at the end, assigned {times} time{'s' if times > 1 else ''}"


def _drain(m: Measurements, drain: Drain) -> list[str]:
    """How long the preloaded backlog took, from the (first) ingest process's start and
    from its service's (the interpreter's start-up and imports left out)."""
    if m.gave_up:
        waited = m.accounted_at - drain.spawned
        return [_row("accounting gave up after", f"{_s(waited):>18}", m.gave_up)]
    count = m.committed.messages
    several = len(m.workers) > 1
    lines = []
    for label, since, note in (
        (
            "drained after",
            drain.spawned,
            f"from the {'first ' if several else ''}ingest process start, of which spawning, "
            f"interpreter and imports {_s(drain.service_started - drain.spawned)}",
        ),
        ("", drain.service_started, "from the service start: connect, subscribe, backlog"),
    ):
        waited = m.accounted_at - since
        lines.append(_row(label, f"{_s(waited):>18}", f"{_n(count / waited)} msg/s; {note}"))
    settled = [report.assignments[-1][0] for report in m.workers.values() if report.assignments]
    if settled:
        lines.append(
            _row(
                "partitions settled after",
                f"{_s(max(settled) - drain.service_started):>18}",
                "the last assignment (CDC states loaded), from the service start",
            )
        )
    return lines


def _per_message(cpu: dict[str, float], messages: int) -> str:
    """CPU µs per message by process: ingest's first (and their sum when there are several),
    then the named ones, then the rest."""
    ingest = [name for name in cpu if name.startswith("ingest")]
    names = [name for name in CPU_ORDER if name in cpu and name not in ingest]
    names += [name for name in cpu if name not in names + ingest and name != "other"]
    parts = [f"{name} {cpu[name] * 1e6 / max(messages, 1):.1f}" for name in ingest + names]
    if len(ingest) > 1:
        together = sum(cpu[name] for name in ingest) * 1e6 / max(messages, 1)
        parts.insert(len(ingest), f"(workers together {together:.1f})")
    return ", ".join(parts)


def _cdc(m: Measurements) -> list[str]:
    got, lines = m.committed, []
    if got.heartbeats:
        lines.append(
            _row(
                "CDC",
                f"{_n(got.heartbeats):>12} heartbeats -> {_n(got.points)} points",
                f"{1 - got.points / got.heartbeats:.1%} filtered, "
                f"{got.heartbeats / max(got.points, 1):.1f}:1",
            )
        )
    if got.readings:
        lines.append(
            _row(
                "CDC (telemetry)",
                f"{_n(got.readings):>12} readings -> {_n(got.reading_points)} points",
                f"{1 - got.reading_points / got.readings:.1%} filtered, "
                f"{got.readings / max(got.reading_points, 1):.1f}:1",
            )
        )
    if m.influx_points is not None:
        if m.influx_points == got.points + got.reading_points:
            check = "= heartbeat_counts.written"
        else:
            check = f"MISMATCH with heartbeat_counts.written ({_n(got.outbox)} in the outbox)"
        lines.append(_row("InfluxDB CDC points", f"{_n(m.influx_points):>12}", check))
    return lines


def _resources(setup: RunSetup, m: Measurements) -> list[str]:
    lines = []
    if setup.source == "mqtt":
        loop, others = "MQTT in, acks", "batches"
    else:
        loop, others = "inbox, batching", "batches, the Kafka consumer"
    for name, report in m.workers.items():
        rss = m.peak_rss_kib.get(name) or report.max_rss_kib
        if rss:
            lines.append(_row(f"{name} peak RSS (VmHWM)", f"{rss / 1024:>12,.0f} MiB"))
        if len(report.commits) > 1:
            span = report.commits[-1][0] - report.commits[0][0]
            lines.append(
                _row(
                    f"{name} worker busy",
                    f"{report.busy_s:>12.1f} s",
                    f"inside Pipeline.process, of {span:.1f} s between first and last commit",
                )
            )
            lines.append(
                _row(
                    f"{name} CPU by thread",
                    f"{report.loop_cpu_s:>12.1f} s event loop ({loop}), "
                    f"{report.cpu_s - report.loop_cpu_s:.1f} s others ({others})",
                    "from subscribing to stopping",
                )
            )
    if m.cpu:
        wall = m.accounted_at - (m.cpu_from or m.published.started)
        cores = os.cpu_count() or 1
        parts = ", ".join(f"{name} {seconds:.1f}" for name, seconds in m.cpu.items())
        lines.append(
            _row(
                "CPU seconds while draining" if m.drain else "CPU seconds while running",
                parts,
                f"{sum(m.cpu.values()):.0f} of {cores * wall:.0f} available: "
                f"{cores} cores x {wall:.1f} s",
            )
        )
        messages = m.published.acknowledged
        lines.append(
            _row(
                "CPU µs per message",
                _per_message(m.cpu, messages),
                f"other {m.cpu.get('other', 0.0) * 1e6 / max(messages, 1):.1f}; "
                + ("over the drain" if m.drain else "from the first publish to all committed"),
            )
        )
    if m.drain:
        cpu, messages = m.drain.publish_cpu, m.published.acknowledged
        lines.append(
            _row(
                "CPU µs per message published",
                _per_message(cpu, messages),
                f"other {cpu.get('other', 0.0) * 1e6 / max(messages, 1):.1f}; "
                + (
                    "through the broker and the bridge into Kafka, no worker running"
                    if setup.source == "kafka"
                    else "while publishing into the broker, ingest stopped"
                ),
            )
        )
    return lines + _own_counts(m)


def _own_counts(m: Measurements) -> list[str]:
    """What the ingest processes counted themselves (added up), and any failure."""
    reports = list(m.workers.values())
    if not reports:
        return []
    dead: Counter[str] = Counter()
    for report in reports:
        dead.update(report.dead_letters)
    own = (
        f"{_n(sum(r.messages for r in reports))} messages, "
        f"{_n(sum(r.duplicates for r in reports))} duplicates, "
        f"{_n(sum(r.points for r in reports))} points (heartbeat + alarm), "
        f"dead letters {dict(dead) or 'none'}"
    )
    lines = [_row("ingest's own count", f"{own:>12}")]
    lines += [_row(f"{name} FAILED", r.failure) for name, r in m.workers.items() if r.failure]
    return lines


def _bridge(m: Measurements) -> list[str]:
    bridge = m.bridge
    if bridge is None:
        return []
    held = f"the topic held {_n(m.kafka_records)} records" if m.kafka_records is not None else ""
    lines = [
        _row(
            "bridge",
            f"{_n(bridge.received)} received, {_n(bridge.forwarded)} in Kafka, "
            f"{_n(bridge.acknowledged)} acknowledged to the broker",
            held,
        )
    ]
    if bridge.truncated:
        lines.append(_row("bridge truncated", _n(bridge.truncated)))
    if bridge.failure:
        lines.append(_row("bridge FAILED", bridge.failure))
    return lines


def _projection(setup: RunSetup, m: Measurements) -> list[str]:
    """Capacity a machine of workers adds, from CPU per message (a drain on Kafka only).

    The model: what limits a worker is CPU (its Python runs under one GIL, about one core);
    on a machine of its own it needs the CPU per message it needed here, so a 2-core machine
    running two workers handles 2 cores / (worker CPU per message). The services every
    worker shares do not grow with workers: each can take at most a core (or as many as
    its machine has) divided by its own CPU per message, whichever of them is lowest caps
    the whole system. On this machine the workers share the two cores with all of them, so
    the measured rates are lower than the projection.
    """
    drain = m.drain
    messages = m.published.acknowledged
    names = [name for name in m.workers if name in m.cpu]
    if drain is None or setup.source != "kafka" or not names or not messages:
        return []
    worker_us = sum(m.cpu[name] for name in names) * 1e6 / messages
    lines = [
        _row(
            f"per {WORKER_CORES}-core worker machine",
            f"{_n(WORKER_CORES * 1e6 / worker_us):>12} msg/s",
            f"projected: {WORKER_CORES} workers of {worker_us:.1f} µs CPU a message "
            f"(their sum over the drain), a core each; {_n(1e6 / worker_us)} msg/s per worker",
        )
    ]
    shared = {
        "PostgreSQL": m.cpu.get("postgres", 0.0),
        "InfluxDB": m.cpu.get("influxd", 0.0),
        "Kafka broker": m.cpu.get("kafka", 0.0) + drain.publish_cpu.get("kafka", 0.0),
        "Mosquitto": m.cpu.get("mosquitto", 0.0) + drain.publish_cpu.get("mosquitto", 0.0),
    }
    ceilings = [
        f"{name} {_n(messages / seconds)}" for name, seconds in shared.items() if seconds > 0
    ]
    bridge = drain.publish_cpu.get("bridge", 0.0)
    if bridge > 0:
        ceilings.append(f"one bridge {_n(messages / bridge)}")
    lines.append(
        _row(
            "ceilings, msg/s per core",
            ", ".join(ceilings),
            "each shared service's CPU per message (Kafka and Mosquitto: producing and "
            "consuming; the bridge: one process, GIL-bound)",
        )
    )
    return lines


def render(setup: RunSetup, stream: Stream, m: Measurements) -> str:
    """The summary table."""
    kafka = setup.source == "kafka"
    if setup.preload and kafka:
        pace = (
            f"preloaded by the {setup.publisher} publisher through the bridge while no worker ran"
        )
    elif setup.preload:
        pace = f"preloaded by the {setup.publisher} publisher while ingest was stopped"
    elif setup.rate:
        pace = f"{setup.publisher} publisher paced at {_n(setup.rate)} msg/s"
    else:
        pace = f"{setup.publisher} publisher unpaced"
    mix = f" ({_n(setup.telemetry_devices)} of them telemetry)" if setup.telemetry_devices else ""
    if setup.ingest_inbox:
        pace += f", ingest's inbox {_n(setup.ingest_inbox)}"
    if kafka:
        pace += (
            f"; Kafka: bridge, topic of {setup.partitions} partitions, "
            f"{setup.workers} worker{'s' if setup.workers > 1 else ''}"
        )
    if setup.preregistered:
        pace += "; panels registered beforehand"
    lines = [
        f"fleetwatch ingest benchmark: {_n(setup.devices)} devices{mix}, "
        f"{_n(setup.messages)} messages, {pace}",
        "-" * 96,
        *_messages(stream, m),
        *_bridge(m),
        *_timing(setup, m),
        *_cdc(m),
        *_resources(setup, m),
        *_projection(setup, m),
    ]
    if m.missing:
        reason = f" ({m.gave_up})" if m.gave_up else ""
        lines.append(
            f"RESULT: {_n(m.missing)} of {_n(m.published.acknowledged)} messages the broker "
            f"acknowledged were never accounted for in PostgreSQL{reason}"
        )
    return "\n".join(lines)
