"""The benchmark's child processes as the parent sees them: spawned, awaited, stopped.

The child side of each (ingest, or the bridge to Kafka) is in ``benchmarks.child``; both
speak the same protocol over one pipe: ``STARTING``, ``READY``, then a report in answer to
``STOP``.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Generic, TypeVar

from benchmarks.child import READY, STARTING, STOP, BridgeReport, IngestReport

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0

Report = TypeVar("Report", IngestReport, BridgeReport)
Spec = TypeVar("Spec")


class ChildError(RuntimeError):
    """A child process did not start, or failed while starting."""


@dataclass(slots=True)
class Child(Generic[Report]):
    """One spawned child process, its end of the pipe and the type of its report."""

    name: str
    process: BaseProcess
    channel: Connection
    report_type: type[Report]

    @classmethod
    def spawn(
        cls,
        name: str,
        target: Callable[[Spec, Connection], None],
        spec: Spec,
        report_type: type[Report],
    ) -> Child[Report]:
        """Start ``target(spec, pipe)`` in a new interpreter; returns at once."""
        context = multiprocessing.get_context("spawn")
        channel, child_end = context.Pipe()
        process = context.Process(target=target, args=(spec, child_end), name=f"bench-{name}")
        process.start()
        child_end.close()
        return cls(name, process, channel, report_type)

    @property
    def pid(self) -> int:
        return self.process.pid or 0

    def is_alive(self) -> bool:
        return self.process.is_alive()

    def expect(self, signal: str, what: str) -> None:
        """Wait for ``signal``; stop the child and raise if something else comes."""
        if not self.channel.poll(START_TIMEOUT_S):
            self.stop()
            raise ChildError(f"{self.name} did not {what} within {START_TIMEOUT_S:.0f}s")
        answer = self.channel.recv()
        if answer != signal:
            self.process.join(STOP_TIMEOUT_S)
            failure = answer.failure if isinstance(answer, self.report_type) else answer
            raise ChildError(f"{self.name} failed to start: {failure}")

    def stop(self) -> Report | None:
        """Ask the child to finish and stop; its report, if it sent one."""
        self.ask_to_stop()
        return self.stopped()

    def ask_to_stop(self) -> None:
        """Tell the child to stop (it finishes its batch first)."""
        try:
            self.channel.send(STOP)
        except OSError:
            logger.warning("%s process already gone", self.name)

    def stopped(self) -> Report | None:
        """Wait for the report of a child told to stop, and for its end."""
        report = None
        try:
            if self.channel.poll(STOP_TIMEOUT_S):
                answer = self.channel.recv()
                report = answer if isinstance(answer, self.report_type) else None
        except (OSError, EOFError):
            logger.warning("%s process gone without a report", self.name)
        self.process.join(STOP_TIMEOUT_S)
        if self.process.is_alive():
            logger.error("%s did not stop; terminating pid %d", self.name, self.pid)
            self.process.terminate()
            self.process.join(STOP_TIMEOUT_S)
        return report


def await_started(children: list[Child[Report]]) -> list[Child[Report]]:
    """Wait until every child has started its service (``STARTING``: interpreter up,
    imports done); all are stopped if one fails."""
    return _awaited(children, STARTING, "start")


def await_ready(children: list[Child[Report]]) -> list[Child[Report]]:
    """Wait until every child is connected (``READY``); all are stopped if one fails."""
    awaited = _awaited(children, READY, "connect")
    for child in awaited:
        logger.info("%s running as pid %d", child.name, child.pid)
    return awaited


def _awaited(children: list[Child[Report]], signal: str, what: str) -> list[Child[Report]]:
    for n, child in enumerate(children):
        try:
            child.expect(signal, what)
        except ChildError:
            stop_all(children[:n] + children[n + 1 :])
            raise
    return children


def stop_all(children: Iterable[Child[Report]]) -> dict[str, Report]:
    """Tell every child to stop, all at once (workers told one at a time would hand their
    partitions to each other on the way), then collect their reports, by name."""
    children = list(children)
    for child in children:
        child.ask_to_stop()
    reports = {}
    for child in children:
        report = child.stopped()
        if report is not None:
            reports[child.name] = report
    return reports
