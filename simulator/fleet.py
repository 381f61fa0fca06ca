"""The fleet: every panel on one agenda, producing one time-ordered stream of messages.

``Fleet`` is the simulator without any I/O. It is driven by asking for what is due up to a
simulated instant (``pop_due``) or iterated to an end (``stream``); the MQTT loop does the
former against the simulated clock, tests and benchmarks the latter. For the same options,
topic prefix and start time the stream is identical, message for message: all randomness
comes from generators seeded by the seed, the device index and (for commands) the request
id, and simultaneous actions run in the order they were scheduled.
"""

from __future__ import annotations

from collections.abc import Iterator

from ingest.contract import TopicScheme
from simulator.commands import CommandAnswerer, Outcome
from simulator.options import FleetOptions
from simulator.panel import Panel, Topics
from simulator.profiles import build_profiles
from simulator.robot import Robot
from simulator.schedule import Agenda, Emission
from simulator.telemetry import TelemetryDevice, shipped_types

DEFAULT_BATCH = 5000


class Fleet:
    """A simulated fleet of alarm panels, telemetry devices and robots, from ``start_ms`` on.

    Args:
        options: size, seed, reporting intervals and behaviour.
        scheme: the topic layout (prefix) to publish under.
        start_ms: simulated epoch milliseconds at which the panels start connecting.
    """

    def __init__(self, options: FleetOptions, scheme: TopicScheme, start_ms: int) -> None:
        self.options = options
        self.start_ms = start_ms
        self.now_ms = start_ms  # time of the last action run
        self._agenda = Agenda()
        self._out: list[Emission] = []
        self.panels = [
            Panel(
                profile,
                options,
                topics=Topics.of(scheme, profile.hostname),
                agenda=self._agenda,
                out=self._out,
                start_ms=start_ms,
            )
            for profile in build_profiles(options)
        ]
        types = shipped_types()
        self.telemetry = [
            TelemetryDevice(
                types[(index - 1) % len(types)],
                index,
                seed=options.seed,
                scheme=scheme,
                interval_ms=options.telemetry_interval_ms,
                agenda=self._agenda,
                out=self._out,
                start_ms=start_ms,
            )
            for index in range(1, options.telemetry + 1)
        ]
        self.robots = [
            Robot(
                index,
                seed=options.seed,
                scheme=scheme,
                interval_ms=options.robot_interval_ms,
                agenda=self._agenda,
                out=self._out,
                start_ms=start_ms,
            )
            for index in range(1, options.robots + 1)
        ]
        self._by_command_topic = {panel.topics.command: panel for panel in self.panels}
        self._answerer = CommandAnswerer(options.seed, options.behaviour, self._agenda)
        for panel in self.panels:
            panel.start(start_ms)

    @property
    def out_of_sync(self) -> frozenset[str]:
        """Hostnames of the panels that never adopt the id SET_DEVICE_ID gives them."""
        return frozenset(p.profile.hostname for p in self.panels if p.profile.out_of_sync)

    def next_at(self) -> int | None:
        """When the next action is due (simulated epoch ms), or None when nothing is."""
        return self._agenda.next_at()

    def pop_due(self, until_ms: int, limit: int = DEFAULT_BATCH) -> list[Emission]:
        """Run what is due up to ``until_ms`` and return the messages it produced, in order.

        Stops after about ``limit`` messages (an action may add a few more), so a caller can
        publish a long backlog in slices; an empty list means nothing more is due.
        """
        agenda, out = self._agenda, self._out
        while len(out) < limit:
            due = agenda.pop_due(until_ms)
            if due is None:
                break
            self.now_ms, action = due
            action(self.now_ms)
        batch = out[:]
        out.clear()
        return batch

    def stream(self, until_ms: int) -> Iterator[Emission]:
        """Every message up to ``until_ms``, in order, as fast as it can be generated."""
        while batch := self.pop_due(until_ms):
            yield from batch

    def command_topics(self) -> list[str]:
        """The topics the panels receive commands on."""
        return list(self._by_command_topic)

    def deliver_command(self, topic: str, payload: bytes, at_ms: int) -> Outcome | None:
        """A command arrived on ``topic`` at simulated ``at_ms``; None if no panel has it.

        The panel answers on the agenda, never before the last action already run, so each
        panel's messages stay in time order.
        """
        panel = self._by_command_topic.get(topic)
        if panel is None:
            return None
        return self._answerer.receive(panel, payload, max(at_ms, self.now_ms))
