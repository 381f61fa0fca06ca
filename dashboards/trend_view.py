"""What the trend pages (Trends, Telemetry) draw alike: the span and window choice, the
headline numbers of a time-weighted trend, and its Flux, editable and runnable."""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Final

import polars as pl
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from access import Permission
from analytics.selection import Period
from dashboards import data, session
from dashboards.data import Sources
from dashboards.filters import Selection
from dashboards.widgets import table

__all__ = [
    "READABLE_POINTS",
    "WINDOWS",
    "YOUNG_HISTORY",
    "drawn_period",
    "editable_flux",
    "flux_result",
    "headline",
    "number",
    "window_choice",
    "window_picker",
]

WINDOWS: Final = {
    "1 minute": timedelta(minutes=1),
    "5 minutes": timedelta(minutes=5),
    "15 minutes": timedelta(minutes=15),
    "1 hour": timedelta(hours=1),
    "6 hours": timedelta(hours=6),
    "1 day": timedelta(days=1),
}
READABLE_POINTS: Final = 200
YOUNG_HISTORY: Final = timedelta(hours=1)
"""A selection whose stored history starts less than this before the end of the period is
drawn over that history alone (see :func:`drawn_period`)."""
_MAX_WINDOWS: Final = 1000
_MINUTE: Final = timedelta(minutes=1)


def drawn_period(period: Period, history_start: datetime | None, now: datetime) -> Period:
    """The part of ``period`` a trend is drawn over, given when the selection's stored
    history starts (``history_start``, None when it has no points).

    A history that starts inside the period less than :data:`YOUNG_HISTORY` before its end
    (or before ``now``, for a period still running) is drawn from its first point's minute
    to then: over the whole period, the window a day or more asks for (15 minutes on raw
    points, an hour on a fleet's hourly rollup) would hold all of it in one or two points,
    while its own span reads few points, raw, at minute windows. Otherwise (no points, or
    points from before the period or from longer ago) the whole period.
    """
    end = min(period.end, _ceil_minute(now))
    if (
        history_start is None
        or history_start <= period.start
        or history_start < end - YOUNG_HISTORY
        or history_start >= end
    ):
        return period
    return Period(max(period.start, _floor_minute(history_start)), end)


def _floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _ceil_minute(moment: datetime) -> datetime:
    floor = _floor_minute(moment)
    return floor if floor == moment else floor + _MINUTE


def window_choice(period: Period, windows: Mapping[str, timedelta]) -> tuple[list[str], int]:
    """The windows that give at most 1000 points over ``period`` (the widest if none do),
    and the index of the finest one that still gives a readable line (at most 200)."""
    fitting = [k for k, v in windows.items() if period.length / v <= _MAX_WINDOWS]
    fitting = fitting or [*windows][-1:]
    readable = [k for k in fitting if period.length / windows[k] <= READABLE_POINTS]
    return fitting, fitting.index(readable[0]) if readable else len(fitting) - 1


def window_picker(where: DeltaGenerator, fitting: list[str], default: int, *, key: str) -> str:
    """The window select box (``key``) of a :func:`window_choice`, in ``where``.

    A window picked by hand stays while the default stays the same; a new default (another
    period, or a young history's own span) is selected afresh, even when the old choice is
    still offered, so that a selection gets the window that suits it.
    """
    remembered = f"{key}_default"
    if (
        st.session_state.get(remembered) != fitting[default]
        or st.session_state.get(key) not in fitting
    ):
        st.session_state[remembered] = fitting[default]
        st.session_state[key] = fitting[default]
    return str(where.selectbox("Window", fitting, key=key))


def headline(trend: pl.DataFrame, last_label: str, last_value: str) -> None:
    """Mean over the period (weighted by live time), lowest and highest window, and one
    page-specific figure."""
    live = trend.filter(pl.col("value").is_not_null() & (pl.col("covered_seconds") > 0))
    stats = live.select(
        mean=(pl.col("value") * pl.col("covered_seconds")).sum() / pl.col("covered_seconds").sum(),
        low=pl.col("value").min(),
        high=pl.col("value").max(),
    ).row(0, named=True)
    cols = st.columns(4)
    cols[0].metric("Mean over the period", number(stats["mean"]), help="weighted by live time")
    cols[1].metric("Lowest window", number(stats["low"]))
    cols[2].metric("Highest window", number(stats["high"]))
    cols[3].metric(last_label, last_value)


def number(value: object) -> str:
    """A trend value with two decimals, or a dash."""
    if isinstance(value, int | float) and math.isfinite(value):
        return f"{value:.2f}"
    return "—"


def editable_flux(
    src: Sources, flux: str, selection: Selection, *, prefix: str, run_key: str
) -> None:
    """The Flux in an editable box (keyed by ``prefix`` and the query) and a button
    (``run_key``) running the edit."""
    # The key follows the query, so a new selection shows its Flux, not the old edit.
    key = f"{prefix}_{zlib.crc32(flux.encode()):08x}"
    edited = st.text_area("Flux", flux, height=400, key=key)
    if st.button("Run this Flux", key=run_key, icon=":material/play_arrow:"):
        flux_result(src, edited, selection, "flux_result")


def flux_result(src: Sources, flux: str, selection: Selection, name: str) -> None:
    """Run an engineer's ``flux`` within the dashboard's limits (``data.run_query``) and show
    its table (``name`` keys its download), with a warning when only its first rows were
    read. Only roles allowed ad-hoc Flux (operators, admins) get here; anyone else is
    refused, recorded."""
    who = session.person()
    if not who.may(Permission.QUERY_FLUX):
        session.refuse(who, Permission.QUERY_FLUX, "run their own Flux", category="page")
        return
    with data.shown_errors():
        result = data.run_query(src, flux)
    rows = result.frame.height
    if result.truncated:
        st.warning(
            f"The query returned more rows than the dashboard reads: showing the first "
            f"{rows:,} rows (FLEETWATCH_DASHBOARD_FLUX_MAX_ROWS). Narrow its range, or aggregate."
        )
    else:
        st.caption(f"{rows:,} rows")
    table(result.frame, name, selection)
