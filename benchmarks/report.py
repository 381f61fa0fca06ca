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


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSetup:
    """What was asked for, as the report states it."""

    devices: int
    messages: int
    rate: float
    window: int
    probe_interval_s: float
    telemetry_devices: int = 0


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
            "publish rate",
            f"{_n(pub.acknowledged / pub.duration_s):>12} msg/s",
            f"{_s(pub.duration_s)} to the last PUBACK, QoS 1, window {setup.window}",
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
        wall = m.accounted_at - m.published.started
        cores = os.cpu_count() or 1
        parts = ", ".join(f"{name} {seconds:.1f}" for name, seconds in m.cpu.items())
        lines.append(
            _row(
                "CPU seconds while running",
                parts,
                f"{sum(m.cpu.values()):.0f} of {cores * wall:.0f} available: "
                f"{cores} cores x {wall:.1f} s",
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
    pace = f"paced at {_n(setup.rate)} msg/s" if setup.rate else "publisher unpaced"
    mix = f" ({_n(setup.telemetry_devices)} of them telemetry)" if setup.telemetry_devices else ""
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
