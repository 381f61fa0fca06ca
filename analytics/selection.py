"""What a report covers: a period of time and a filter on the devices."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = ["AnalyticsError", "Period", "ReportFilter"]

_COUNTRY: Final = re.compile(r"^[A-Za-z]{2,3}$")


class AnalyticsError(ValueError):
    """A report was asked for something it cannot answer (bad period, filter or option)."""


def _require_aware(name: str, moment: datetime) -> None:
    if moment.utcoffset() is None:
        raise AnalyticsError(f"{name} must be timezone-aware, got {moment.isoformat()}")


@dataclass(frozen=True, slots=True)
class Period:
    """The half-open interval [start, end) a report looks at.

    Attributes:
        start: first instant included (timezone-aware).
        end: first instant excluded (timezone-aware, after ``start``).
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        _require_aware("start", self.start)
        _require_aware("end", self.end)
        if self.end <= self.start:
            raise AnalyticsError(
                f"empty period: {self.start.isoformat()} to {self.end.isoformat()}"
            )

    @classmethod
    def last(cls, length: timedelta, *, now: datetime | None = None) -> Period:
        """The ``length`` of time up to ``now`` (the current time when None)."""
        end = now if now is not None else datetime.now(UTC)
        return cls(end - length, end)

    @property
    def length(self) -> timedelta:
        """How long the period is."""
        return self.end - self.start


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportFilter:
    """Which devices a report covers; an empty filter covers the whole fleet.

    Attributes:
        zone: only devices of this zone.
        country: only devices of this country code (as devices report it, e.g. ``ES``).
        hostnames: only these devices (``ESG_ALARM_0001``); empty for all.
        kind: only devices of this declared kind (``panel``, ``telemetry``).
        device_type: only devices of this device type (``vibration_sensor``).
    """

    zone: int | None = None
    country: str | None = None
    hostnames: tuple[str, ...] = ()
    kind: str | None = None
    device_type: str | None = None

    def __post_init__(self) -> None:
        if self.country is not None and not _COUNTRY.match(self.country):
            raise AnalyticsError(f"country must be a 2-3 letter code, got {self.country!r}")
        if isinstance(self.hostnames, str):
            raise AnalyticsError("hostnames must be a tuple of names, not one string")
        for hostname in self.hostnames:
            if not hostname or "," in hostname:
                raise AnalyticsError(f"bad hostname {hostname!r}")
