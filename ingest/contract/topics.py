"""MQTT topic layout of the device wire contract: ``{prefix}/{hostname}/{kind}``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

HOSTNAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


class TopicError(ValueError):
    """A topic does not follow the contract's layout."""


class TopicKind(StrEnum):
    """Last topic level: what the message is."""

    STATUS = "status"
    HEARTBEAT = "heartbeat"
    ALARM = "alarm"
    RESPONSE = "response"
    COMMAND = "command"
    LWT = "lwt"
    TELEMETRY = "telemetry"  # JSON readings of a device of a declared type (seed 002)
    ROBOT = "robot"  # a robot's JSON state: battery, performance, servos, IMU, sensors
    JOB = "job"  # a robot's JSON report on a job's progress


DEVICE_TO_SERVER = frozenset(
    {
        TopicKind.STATUS,
        TopicKind.HEARTBEAT,
        TopicKind.ALARM,
        TopicKind.RESPONSE,
        TopicKind.LWT,
        TopicKind.TELEMETRY,
        TopicKind.ROBOT,
        TopicKind.JOB,
    }
)


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    """A parsed device topic."""

    prefix: str
    hostname: str
    kind: TopicKind

    def __post_init__(self) -> None:
        if not PREFIX_PATTERN.fullmatch(self.prefix):
            raise TopicError(f"invalid topic prefix {self.prefix!r}")
        if not HOSTNAME_PATTERN.fullmatch(self.hostname):
            raise TopicError(f"invalid hostname {self.hostname!r} in topic")

    def __str__(self) -> str:
        return f"{self.prefix}/{self.hostname}/{self.kind.value}"


@dataclass(frozen=True, slots=True)
class TopicScheme:
    """Builds and parses the topics under one prefix (default ``fleet``)."""

    prefix: str = "fleet"

    def __post_init__(self) -> None:
        if not PREFIX_PATTERN.fullmatch(self.prefix):
            raise TopicError(f"invalid topic prefix {self.prefix!r}")

    def topic(self, hostname: str, kind: TopicKind) -> str:
        """The topic of ``kind`` messages for one device."""
        return str(DeviceTopic(self.prefix, hostname, kind))

    def subscription(self, kind: TopicKind | None = None) -> str:
        """Wildcard filter for one kind from every device, or everything under the prefix."""
        return f"{self.prefix}/+/{kind.value}" if kind else f"{self.prefix}/#"

    def parse(self, topic: str) -> DeviceTopic:
        """Split a received topic into hostname and kind; raise TopicError if it is foreign."""
        head = self.prefix + "/"
        if not topic.startswith(head):
            raise TopicError(f"topic {topic!r} is not under prefix {self.prefix!r}")
        parts = topic[len(head) :].split("/")
        if len(parts) != 2:
            raise TopicError(f"topic {topic!r} is not {self.prefix}/<hostname>/<kind>")
        hostname, kind = parts
        try:
            return DeviceTopic(self.prefix, hostname, TopicKind(kind))
        except ValueError as exc:
            if isinstance(exc, TopicError):
                raise
            raise TopicError(f"unknown message kind {kind!r} in topic {topic!r}") from exc
