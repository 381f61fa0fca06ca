"""The sidebar every page shares: period, kind and type, zone, country and devices.

The entry point (``dashboards/app.py``) draws the sidebar before it runs the chosen page, so
the choices stay put while a manager moves between pages; the page reads them back with
:func:`current`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final

import polars as pl
import streamlit as st

from analytics.selection import Period, ReportFilter

__all__ = ["PERIODS", "Selection", "current", "period_ending", "sidebar"]

PERIODS: Final = {
    "Last hour": timedelta(hours=1),
    "Last 24 hours": timedelta(days=1),
    "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30),
}
"""The periods offered, up to the current minute; "Custom dates" picks whole UTC days."""
_CUSTOM: Final = "Custom dates"
_ALL: Final = "All"
_STATE_KEY: Final = "fleetwatch_selection"
_MINUTE: Final = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Selection:
    """What the pages report on.

    Attributes:
        period: the time covered.
        filters: the devices covered.
        label: the period as the manager chose it (for titles and file names).
        fleet_devices: how many devices a selection without picked devices covers (the
            whole fleet, a zone or a country); None when devices are picked.
    """

    period: Period
    filters: ReportFilter
    label: str
    fleet_devices: int | None = None

    @property
    def slug(self) -> str:
        """A file-name-safe tag of the period, for downloads."""
        start, end = self.period.start, self.period.end
        return f"{start:%Y%m%dT%H%M}-{end:%Y%m%dT%H%M}"


def period_ending(length: timedelta, now: datetime) -> Period:
    """The ``length`` up to ``now`` rounded down to the minute: the same period (and the same
    cache entries) for every rerun within that minute."""
    end = now.astimezone(UTC).replace(second=0, microsecond=0)
    return Period(end - length, end)


def sidebar(devices: pl.DataFrame) -> Selection:
    """Draw the filters in the sidebar from the fleet's ``hostname``, ``zone``, ``country``,
    ``kind`` and ``device_type`` columns; remember and return the choice."""
    bar = st.sidebar
    bar.header("Filters")
    choice = bar.selectbox("Period", [*PERIODS, _CUSTOM], index=1, key="filter_period")
    now = datetime.now(UTC)
    if choice == _CUSTOM:
        today = now.date()
        picked = bar.date_input(
            "Days (UTC)", value=(today - timedelta(days=7), today), key="filter_days"
        )
        period = _days(picked, today)
    else:
        period = period_ending(PERIODS[choice], now)

    kinds = _choices(devices, "kind")
    kind = bar.selectbox("Kind", [_ALL, *kinds], key="filter_kind") if len(kinds) > 1 else _ALL
    narrowed = devices if kind == _ALL else devices.filter(pl.col("kind") == kind)
    types = _choices(narrowed, "device_type")
    device_type = bar.selectbox("Type", [_ALL, *types], key="filter_type") if types else _ALL
    if device_type != _ALL:
        narrowed = narrowed.filter(pl.col("device_type") == device_type)
    zones = sorted(z for z in narrowed["zone"].unique().to_list() if z is not None)
    zone = bar.selectbox("Zone", [_ALL, *map(str, zones)], key="filter_zone")
    countries = _choices(narrowed, "country")
    country = bar.selectbox("Country", [_ALL, *countries], key="filter_country")
    if zone != _ALL:
        narrowed = narrowed.filter(pl.col("zone") == int(zone))
    if country != _ALL:
        narrowed = narrowed.filter(pl.col("country") == country)
    hostnames = bar.multiselect(
        "Devices",
        sorted(narrowed["hostname"].to_list()),
        key="filter_devices",
        placeholder="All devices",
    )
    selection = Selection(
        period=period,
        filters=ReportFilter(
            zone=None if zone == _ALL else int(zone),
            country=None if country == _ALL else country,
            hostnames=tuple(hostnames),
            kind=None if kind == _ALL else kind,
            device_type=None if device_type == _ALL else device_type,
        ),
        label=choice,
        fleet_devices=None if hostnames else narrowed.height,
    )
    st.session_state[_STATE_KEY] = selection
    return selection


def _choices(devices: pl.DataFrame, column: str) -> list[str]:
    """The distinct texts of ``column`` in the fleet, sorted, without nulls."""
    if column not in devices.columns:
        return []
    return sorted(str(v) for v in devices[column].unique().to_list() if v is not None)


def current() -> Selection:
    """The selection the sidebar made on this run (the last 24 hours of the whole fleet when
    the page runs without the entry point)."""
    selection = st.session_state.get(_STATE_KEY)
    if isinstance(selection, Selection):
        return selection
    default = "Last 24 hours"
    return Selection(period_ending(PERIODS[default], datetime.now(UTC)), ReportFilter(), default)


def _days(picked: object, today: date) -> Period:
    """Whole UTC days from the date input (a half-picked range covers its one day)."""
    days = [d for d in picked if isinstance(d, date)] if isinstance(picked, tuple) else []
    if isinstance(picked, date):
        days = [picked]
    first = days[0] if days else today
    last = days[-1] if days else today
    start = datetime.combine(first, time(), UTC)
    return Period(start, datetime.combine(last, time(), UTC) + timedelta(days=1))
