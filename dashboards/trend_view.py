"""What the trend pages (Trends, Telemetry) draw alike: the window choice, the headline
numbers of a time-weighted trend, and its Flux, editable and runnable."""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from datetime import timedelta
from typing import Final

import polars as pl
import streamlit as st

from analytics.selection import Period
from dashboards import data
from dashboards.data import Sources
from dashboards.filters import Selection
from dashboards.widgets import table

__all__ = ["READABLE_POINTS", "WINDOWS", "editable_flux", "headline", "number", "window_choice"]

WINDOWS: Final = {
    "5 minutes": timedelta(minutes=5),
    "15 minutes": timedelta(minutes=15),
    "1 hour": timedelta(hours=1),
    "6 hours": timedelta(hours=6),
    "1 day": timedelta(days=1),
}
READABLE_POINTS: Final = 200
_MAX_WINDOWS: Final = 1000


def window_choice(period: Period, windows: Mapping[str, timedelta]) -> tuple[list[str], int]:
    """The windows that give at most 1000 points over ``period`` (the widest if none do),
    and the index of the finest one that still gives a readable line (at most 200)."""
    fitting = [k for k, v in windows.items() if period.length / v <= _MAX_WINDOWS]
    fitting = fitting or [*windows][-1:]
    readable = [k for k in fitting if period.length / windows[k] <= READABLE_POINTS]
    return fitting, fitting.index(readable[0]) if readable else len(fitting) - 1


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
        with data.shown_errors():
            result = data.run_query(src, edited)
        st.caption(f"{result.height} rows")
        table(result, "flux_result", selection)
