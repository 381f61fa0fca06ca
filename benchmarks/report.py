"""The benchmark's results and their summary table."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

from benchmarks.child import IngestReport
from benchmarks.probes import Committed, percentile
from benchmarks.publisher import PublishResult
from benchmarks.stream import Stream
from ingest.contract import TopicKind

LABEL = 34  # width of the first column
CPU_ORDER = ("ingest", "postgres", "mosquitto", "influxd", "publisher", "benchmark")


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


@dataclass(frozen=True, slots=True, kw_only=True)
class Drain:
    """A preloaded run's timeline: the stream was published while ingest was stopped, and
    the broker held it for ingest's session until ingest was started again."""

    spawned: float  # time.time() when the ingest process was started
    service_started: float  # when its service began connecting (interpreter and imports done)
    publish_cpu: dict[str, float]  # CPU seconds while the stream was published into the broker


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
    peak_rss_kib: int | None = None
    ingest: IngestReport | None = None

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
    pub, report = m.published, m.ingest
    lines = [
        _row(
            "publish rate (ingest stopped)" if m.drain else "publish rate",
            f"{_n(pub.acknowledged / pub.duration_s):>12} msg/s",
            f"{_s(pub.duration_s)} to the last PUBACK, QoS 1, window {setup.window}"
            + ("; queued by the broker" if m.drain else ""),
        )
    ]
    rate = report.sustained_rate if report else None
    if report and rate is not None:
        (first, _), (last, _) = report.commits[0], report.commits[-1]
        lines.append(
            _row(
                "sustained ingest rate",
                f"{_n(rate):>12} msg/s",
                f"first to last commit {_s(last - first)}; {_n(report.batches)} batches, "
                f"{report.messages / max(report.batches, 1):,.0f} messages each on average",
            )
        )
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


def _drain(m: Measurements, drain: Drain) -> list[str]:
    """How long the preloaded backlog took, from the ingest process's start and from its
    service's (the interpreter's start-up and imports left out)."""
    if m.gave_up:
        waited = m.accounted_at - drain.spawned
        return [_row("accounting gave up after", f"{_s(waited):>18}", m.gave_up)]
    count = m.committed.messages
    lines = []
    for label, since, note in (
        (
            "drained after",
            drain.spawned,
            f"from the ingest process start, of which spawning, interpreter and imports "
            f"{_s(drain.service_started - drain.spawned)}",
        ),
        ("", drain.service_started, "from the service start: connect, subscribe, backlog"),
    ):
        waited = m.accounted_at - since
        lines.append(_row(label, f"{_s(waited):>18}", f"{_n(count / waited)} msg/s; {note}"))
    return lines


def _per_message(cpu: dict[str, float], messages: int) -> str:
    """CPU µs per message by process, the named ones first."""
    names = [name for name in CPU_ORDER if name in cpu]
    names += [name for name in cpu if name not in names and name != "other"]
    return ", ".join(f"{name} {cpu[name] * 1e6 / max(messages, 1):.1f}" for name in names)


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


def _resources(m: Measurements) -> list[str]:
    report, lines = m.ingest, []
    rss = m.peak_rss_kib or (report.max_rss_kib if report else None)
    if rss:
        lines.append(_row("ingest peak RSS (VmHWM)", f"{rss / 1024:>12,.0f} MiB"))
    if report and len(report.commits) > 1:
        span = report.commits[-1][0] - report.commits[0][0]
        lines.append(
            _row(
                "ingest worker busy",
                f"{report.busy_s:>12.1f} s",
                f"inside Pipeline.process, of {span:.1f} s between first and last commit",
            )
        )
        lines.append(
            _row(
                "ingest CPU by thread",
                f"{report.loop_cpu_s:>12.1f} s event loop (MQTT in, acks), "
                f"{report.cpu_s - report.loop_cpu_s:.1f} s others (batches)",
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
                "while publishing into the broker, ingest stopped",
            )
        )
    if report:
        own = (
            f"{_n(report.messages)} messages, {_n(report.duplicates)} duplicates, "
            f"{_n(report.points)} points (heartbeat + alarm), "
            f"dead letters {report.dead_letters or 'none'}"
        )
        lines.append(_row("ingest's own count", f"{own:>12}"))
        if report.failure:
            lines.append(_row("ingest FAILED", report.failure))
    return lines


def render(setup: RunSetup, stream: Stream, m: Measurements) -> str:
    """The summary table."""
    if setup.preload:
        pace = f"preloaded by the {setup.publisher} publisher while ingest was stopped"
    elif setup.rate:
        pace = f"{setup.publisher} publisher paced at {_n(setup.rate)} msg/s"
    else:
        pace = f"{setup.publisher} publisher unpaced"
    mix = f" ({_n(setup.telemetry_devices)} of them telemetry)" if setup.telemetry_devices else ""
    if setup.ingest_inbox:
        pace += f", ingest's MQTT inbox {_n(setup.ingest_inbox)}"
    lines = [
        f"fleetwatch ingest benchmark: {_n(setup.devices)} devices{mix}, "
        f"{_n(setup.messages)} messages, {pace}",
        "-" * 96,
        *_messages(stream, m),
        *_timing(setup, m),
        *_cdc(m),
        *_resources(m),
    ]
    if m.missing:
        reason = f" ({m.gave_up})" if m.gave_up else ""
        lines.append(
            f"RESULT: {_n(m.missing)} of {_n(m.published.acknowledged)} messages the broker "
            f"acknowledged were never accounted for in PostgreSQL{reason}"
        )
    return "\n".join(lines)
