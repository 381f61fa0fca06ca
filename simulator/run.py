"""The MQTT loop: publish the fleet's messages on the simulated clock and answer commands.

One connection publishes for every panel (a broker would struggle with, and a benchmark
host could not open, a connection per simulated panel) and subscribes to every panel's
command topic. The fleet's generator decides what is due; this module only moves bytes.
If the connection drops, it reconnects with backoff and carries on from the simulated
time it reached; what fell due meanwhile goes out in a burst, as panels' buffers would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiomqtt

from fleetwatch.settings import MqttSettings
from ingest.broker import make_client
from ingest.contract import TopicKind, TopicScheme
from simulator.clock import SimClock
from simulator.commands import Outcome
from simulator.errors import BrokerLostError, SimulatorConfigError
from simulator.fleet import Fleet
from simulator.options import FleetOptions
from simulator.publisher import PipelinedPublisher
from simulator.schedule import Emission

logger = logging.getLogger(__name__)

RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 15.0
# Messages due this little (real time) ahead are published now rather than after a wait of
# a few milliseconds: their timestamps are unchanged, and the loop does not spin on timers.
LOOKAHEAD_S = 0.005


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """How the simulation runs against the broker.

    Args:
        speed: simulated seconds per real second.
        duration_s: simulated seconds to run; None runs until stopped.
        window: QoS 1 messages on the wire awaiting their PUBACK, at most.
        report_interval_s: real seconds between progress log lines.
    """

    speed: float = 1.0
    duration_s: float | None = None
    window: int = 1000
    report_interval_s: float = 10.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.speed) and self.speed > 0):
            raise SimulatorConfigError(f"speed must be a positive number, got {self.speed}")
        if self.duration_s is not None and not (
            math.isfinite(self.duration_s) and self.duration_s > 0
        ):
            raise SimulatorConfigError(f"duration must be positive, got {self.duration_s}")
        if self.window < 1 or self.report_interval_s <= 0:
            raise SimulatorConfigError("window must be >= 1 and report_interval_s > 0")


@dataclass(slots=True)
class RunStats:
    """What a run published and answered."""

    published: Counter[str] = field(default_factory=Counter)  # by topic kind
    commands: Counter[str] = field(default_factory=Counter)  # by Outcome
    simulated_s: float = 0.0
    real_s: float = 0.0

    @property
    def total(self) -> int:
        """Messages published."""
        return sum(self.published.values())

    @property
    def rate(self) -> float:
        """Messages published per real second."""
        return self.total / self.real_s if self.real_s > 0 else 0.0

    def count(self, batch: list[Emission]) -> None:
        """Add a published batch to the counts."""
        published = self.published
        for emission in batch:
            topic = emission.topic
            published[topic[topic.rfind("/") + 1 :]] += 1

    def summary(self) -> str:
        """One line for humans and benchmark logs."""
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(self.published.items()))
        answered = ", ".join(f"{kind} {n}" for kind, n in sorted(self.commands.items()))
        return (
            f"published {self.total} messages in {self.real_s:.1f} s ({self.rate:.0f} msg/s; "
            f"{kinds or 'none'}) covering {self.simulated_s:.0f} simulated s; "
            f"commands: {answered or 'none'}"
        )


class Simulator:
    """Runs a ``Fleet`` against an MQTT broker until stopped or its duration is over.

    Args:
        mqtt: the broker, and the topic prefix to publish under.
        fleet: the fleet's options.
        options: speed, duration and publishing window.
        start_ms: simulated epoch milliseconds at which the fleet starts (default: now).
    """

    def __init__(
        self,
        mqtt: MqttSettings,
        fleet: FleetOptions,
        options: RunOptions | None = None,
        *,
        start_ms: int | None = None,
    ) -> None:
        self._mqtt = mqtt
        self._options = options or RunOptions()
        self._scheme = TopicScheme(mqtt.topic_prefix)
        if start_ms is None:
            start_ms = int(datetime.now(UTC).timestamp() * 1000)
        self.fleet = Fleet(fleet, self._scheme, start_ms)
        self.stats = RunStats()
        self.connected = asyncio.Event()  # set while subscribed to the command topics
        self._ever_connected = False

    async def run(self, stop: asyncio.Event) -> RunStats:
        """Publish until ``stop`` is set or the duration is over; returns what was done.

        Raises BrokerLostError if the broker cannot be reached at start. A connection lost
        later is re-established with backoff.
        """
        options, fleet = self._options, self.fleet
        clock = SimClock(fleet.start_ms, options.speed)
        end_ms = None
        if options.duration_s is not None:
            end_ms = fleet.start_ms + round(options.duration_s * 1000)
        wake = asyncio.Event()
        relay = asyncio.create_task(_relay(stop, wake))
        backoff = RECONNECT_MIN_S
        try:
            while not stop.is_set():
                try:
                    if await self._session(clock, end_ms, stop, wake):
                        break
                except (aiomqtt.MqttError, BrokerLostError) as exc:
                    if not self._ever_connected:
                        where = f"{self._mqtt.mqtt_host}:{self._mqtt.mqtt_port}"
                        raise BrokerLostError(f"MQTT broker unreachable at {where}: {exc}") from exc
                    logger.warning(
                        "broker connection lost (%s); reconnecting in %.1fs", exc, backoff
                    )
                    if await _wait(stop, backoff):
                        break
                    backoff = min(backoff * 2, RECONNECT_MAX_S)
        finally:
            relay.cancel()
            await asyncio.gather(relay, return_exceptions=True)
            self.stats.real_s = clock.real_elapsed()
            self.stats.simulated_s = (fleet.now_ms - fleet.start_ms) / 1000
        logger.info("simulation over: %s", self.stats.summary())
        return self.stats

    async def _session(
        self, clock: SimClock, end_ms: int | None, stop: asyncio.Event, wake: asyncio.Event
    ) -> bool:
        """One connection's worth of simulation; True once the duration is over."""
        client_id = f"fleetwatch-simulator-{uuid.uuid4().hex[:10]}"
        client = make_client(self._mqtt, client_id=client_id)
        publisher = PipelinedPublisher(client, self._options.window)
        async with client:
            await client.subscribe(self._scheme.subscription(TopicKind.COMMAND), qos=1)
            self._ever_connected = True
            logger.info(
                "simulating %d panels, %d telemetry devices and %d robots under %s/ at %gx as %s",
                len(self.fleet.panels),
                len(self.fleet.telemetry),
                len(self.fleet.robots),
                self._scheme.prefix,
                self._options.speed,
                client_id,
            )
            self.connected.set()
            reader = asyncio.create_task(self._read_commands(client, clock, wake))
            pump = asyncio.create_task(self._pump(publisher, clock, end_ms, stop, wake))
            try:
                done, _ = await asyncio.wait({reader, pump}, return_when=asyncio.FIRST_COMPLETED)
                if pump not in done:
                    reader.result()  # the connection's MqttError
                    raise BrokerLostError("command subscription ended")
                finished = pump.result()
                await publisher.drain()
                return finished
            finally:
                self.connected.clear()
                for task in (reader, pump):
                    task.cancel()
                await asyncio.gather(reader, pump, return_exceptions=True)

    async def _pump(
        self,
        publisher: PipelinedPublisher,
        clock: SimClock,
        end_ms: int | None,
        stop: asyncio.Event,
        wake: asyncio.Event,
    ) -> bool:
        """Publish what falls due on the clock; True once ``end_ms`` is reached."""
        fleet, stats, options = self.fleet, self.stats, self._options
        lookahead_ms = int(LOOKAHEAD_S * options.speed * 1000)
        next_report = clock.real_elapsed() + options.report_interval_s
        while not stop.is_set():
            horizon = clock.now_ms() + lookahead_ms
            if end_ms is not None:
                horizon = min(horizon, end_ms)
            batch = fleet.pop_due(horizon)
            if batch:
                stats.count(batch)
                await publisher.publish(batch)
                await asyncio.sleep(0)  # let received commands in between batches
            elif end_ms is not None and horizon >= end_ms:
                return True
            else:
                next_at = fleet.next_at()
                target = end_ms if next_at is None else next_at
                delay = options.report_interval_s
                if target is not None:
                    delay = min(delay, clock.real_seconds_until(target - lookahead_ms))
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await wake.wait()
            if clock.real_elapsed() >= next_report:
                next_report += options.report_interval_s
                self._report(clock, publisher)
        return False

    def _report(self, clock: SimClock, publisher: PipelinedPublisher) -> None:
        real = clock.real_elapsed()
        logger.info(
            "simulated +%.0fs in %.0fs: %d messages published (%.0f msg/s), %d awaiting "
            "PUBACK, %d commands received",
            (self.fleet.now_ms - self.fleet.start_ms) / 1000,
            real,
            self.stats.total,
            self.stats.total / real if real > 0 else 0.0,
            publisher.in_flight,
            sum(self.stats.commands.values()),
        )

    async def _read_commands(
        self, client: aiomqtt.Client, clock: SimClock, wake: asyncio.Event
    ) -> None:
        """Hand every command received to its panel; wake the pump for the answers."""
        async for message in client.messages:
            topic = str(message.topic)
            payload = message.payload if isinstance(message.payload, bytes) else b""
            outcome = self.fleet.deliver_command(topic, payload, clock.now_ms())
            if outcome is None:
                logger.debug("command on %s is for no simulated panel", topic)
                continue
            if outcome is Outcome.UNDECODABLE:
                logger.warning("undecodable command on %s: %r", topic, payload[:32])
            self.stats.commands[outcome.value] += 1
            wake.set()


async def _relay(stop: asyncio.Event, wake: asyncio.Event) -> None:
    """Wake the pump when asked to stop."""
    await stop.wait()
    wake.set()


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` or until ``stop``; True if stopped."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
    return stop.is_set()
