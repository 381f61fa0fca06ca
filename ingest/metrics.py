"""Prometheus metrics of one ingest process (its own registry, served on /metrics)."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ingest.handling import Item, Outcome
from ingest.messages import (
    AlarmReport,
    CommandReply,
    HeartbeatReport,
    JobReport,
    LastWill,
    RobotReport,
    StatusReport,
    TelemetryReport,
)

_KINDS = {
    StatusReport: "status",
    HeartbeatReport: "heartbeat",
    AlarmReport: "alarm",
    CommandReply: "response",
    LastWill: "lwt",
    TelemetryReport: "telemetry",
    RobotReport: "robot",
    JobReport: "job",
}


def kind_of(item: Item) -> str:
    """Metric label for one received item."""
    if item.rejection is not None:
        return "rejected"
    if item.message is None:
        return "own_command"
    return _KINDS.get(type(item.message), "other")


class IngestMetrics:
    """Counters, histograms and gauges; ``render`` gives the exposition text."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "fleetwatch_messages", "Messages received, by kind", ["kind"], registry=r
        )
        self.dead_letters = Counter(
            "fleetwatch_dead_letters", "Messages dead-lettered, by reason", ["reason"], registry=r
        )
        self.heartbeats = Counter(
            "fleetwatch_cdc_heartbeats",
            "Heartbeats judged by the CDC: written as a point, skipped, or duplicate",
            ["outcome"],
            registry=r,
        )
        self.batch_size = Histogram(
            "fleetwatch_batch_size",
            "Messages per committed batch",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
            registry=r,
        )
        self.commit_seconds = Histogram(
            "fleetwatch_batch_seconds",
            "Time to decode, handle and commit one batch",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.outbox = Gauge(
            "fleetwatch_outbox_points", "Points waiting for InfluxDB (spool depth)", registry=r
        )
        self.devices_online = Gauge(
            "fleetwatch_devices_online", "Devices currently online", registry=r
        )
        self.commands = Gauge("fleetwatch_commands", "Commands by status", ["status"], registry=r)
        self.loop_errors = Counter(
            "fleetwatch_loop_errors",
            "Failed ticks of a background loop, by loop and kind (unavailable: a store or the "
            "broker could not be reached; error: anything else, logged with its traceback)",
            ["loop", "kind"],
            registry=r,
        )
        self.loop_running = Gauge(
            "fleetwatch_loop_running", "1 while a background loop runs", ["loop"], registry=r
        )

    def observe_batch(
        self, kinds: Tally[str], outcome: Outcome, received: int, seconds: float
    ) -> None:
        """Record one committed batch."""
        for kind, count in kinds.items():
            self.messages.labels(kind).inc(count)
        for reason, count in outcome.dead_letters.items():
            self.dead_letters.labels(reason).inc(count)
        self.heartbeats.labels("written").inc(outcome.heartbeat_points)
        self.heartbeats.labels("skipped").inc(
            max(outcome.heartbeats_received - outcome.heartbeat_points, 0)
        )
        self.heartbeats.labels("duplicate").inc(outcome.duplicates)
        self.batch_size.observe(received)
        self.commit_seconds.observe(seconds)

    def set_fleet(self, online: int, commands: Mapping[str, int], outbox: int) -> None:
        """Refresh the gauges read from the stores."""
        self.devices_online.set(online)
        self.outbox.set(outbox)
        for status, count in commands.items():
            self.commands.labels(status).set(count)

    def render(self) -> bytes:
        """Prometheus text exposition."""
        return generate_latest(self.registry)
