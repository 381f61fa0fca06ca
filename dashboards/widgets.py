"""What every page draws the same way: headline numbers, a table with its CSV, and the way
from a table that names a device to that device's page."""

from __future__ import annotations

import math
from typing import Final, Literal, NoReturn

import polars as pl
import streamlit as st

from dashboards.filters import Selection

__all__ = [
    "DEVICE_KEY",
    "DEVICE_PAGE",
    "count",
    "daily_bars",
    "device_table",
    "open_device",
    "percent",
    "seconds",
    "table",
]

DEVICE_PAGE: Final = "app_pages/device.py"
"""The Device page's script, as ``st.navigation`` knows it."""
DEVICE_KEY: Final = "fleetwatch_device"
"""Session state: the hostname the Device page shows (last opened or picked)."""


def table(frame: pl.DataFrame, name: str, selection: Selection) -> None:
    """The frame behind a chart, and a button downloading it as CSV (``name`` also keys it,
    so it must be unique on the page). A frame with a ``hostname`` column is shown by
    :func:`device_table`: selecting a row opens that device's page."""
    if "hostname" in frame.columns:
        device_table(frame, f"rows_{name}")
    else:
        st.dataframe(frame, hide_index=True)
    st.download_button(
        f"Download {name} (CSV)",
        frame.write_csv(),
        file_name=f"fleetwatch_{name}_{selection.slug}.csv",
        mime="text/csv",
        key=f"csv_{name}",
        on_click="ignore",
        icon=":material/download:",
    )


def device_table(
    frame: pl.DataFrame, key: str, *, width: Literal["stretch", "content"] | int = "stretch"
) -> None:
    """Show ``frame`` (it has a ``hostname`` column) with one selectable row; selecting a
    row opens the Device page of its hostname. ``key`` must be unique on the page."""
    shown = st.dataframe(
        frame,
        hide_index=True,
        width=width,
        key=key,
        on_select="rerun",
        selection_mode="single-row",
    )
    rows = shown.selection.rows
    if rows and rows[0] < frame.height:
        hostname = frame["hostname"][rows[0]]
        if hostname:
            open_device(str(hostname))


def open_device(hostname: str) -> NoReturn:
    """Switch to the Device page showing ``hostname`` (also in its URL, ``?device=``)."""
    st.session_state[DEVICE_KEY] = hostname
    st.switch_page(DEVICE_PAGE, query_params={"device": hostname})


def daily_bars(frame: pl.DataFrame, *, y: str, color: str, y_label: str) -> None:
    """Stacked bars per UTC day of ``frame``'s ``day`` column. The days are drawn as labels,
    not on a time axis, so that a period of one or two days still gets wide bars."""
    days = frame.with_columns(pl.col("day").dt.strftime("%Y-%m-%d"))
    st.bar_chart(days, x="day", y=y, color=color, x_label="day (UTC)", y_label=y_label)


def count(value: object) -> str:
    """A count for ``st.metric``: thousands separated, an em dash for nothing."""
    return f"{value:,}" if isinstance(value, int) else "—"


def percent(value: object) -> str:
    """A 0-1 share as a percentage, an em dash for nothing."""
    if isinstance(value, int | float) and math.isfinite(value):
        return f"{value:.1%}"
    return "—"


def seconds(value: object) -> str:
    """A duration in seconds, in the largest unit that keeps it readable."""
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "—"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"
