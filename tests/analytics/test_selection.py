"""Periods and filters validate themselves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analytics.selection import AnalyticsError, Period, ReportFilter

NOW = datetime(2025, 3, 1, tzinfo=UTC)


def test_period_last_ends_now() -> None:
    """Period.last is the given length up to now."""
    period = Period.last(timedelta(days=7), now=NOW)
    assert (period.start, period.end, period.length) == (
        NOW - timedelta(days=7),
        NOW,
        timedelta(days=7),
    )


def test_period_rejects_naive_and_empty() -> None:
    """A naive time or an end not after the start is refused."""
    with pytest.raises(AnalyticsError, match="timezone-aware"):
        Period(datetime(2025, 1, 1), NOW)  # noqa: DTZ001 - the point of the test
    with pytest.raises(AnalyticsError, match="empty period"):
        Period(NOW, NOW)


def test_filter_validates_country_and_hostnames() -> None:
    """A country code is 2-3 letters; hostnames are a tuple of names without commas."""
    assert ReportFilter(zone=3, country="ES", hostnames=("A", "B")).hostnames == ("A", "B")
    with pytest.raises(AnalyticsError):
        ReportFilter(country="Spain")
    with pytest.raises(AnalyticsError):
        ReportFilter(hostnames="ESG_ALARM_0001")  # type: ignore[arg-type]
    with pytest.raises(AnalyticsError):
        ReportFilter(hostnames=("A,B",))
