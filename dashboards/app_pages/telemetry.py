"""Telemetry: the time-weighted trend of a device type's metric, and the Flux behind it.

A field engineer picks a device type and one of its declared metrics; the devices are the
type's (or those picked in the sidebar). The values are the same step-function means as on
Trends, read from the raw telemetry points of the period.
"""

from __future__ import annotations

import zlib
from datetime import timedelta
from typing import Final

import polars as pl
import streamlit as st

from analytics import load
from dashboards import data, filters
from dashboards.widgets import count, table

_WINDOWS: Final = {
    "5 minutes": timedelta(minutes=5),
    "15 minutes": timedelta(minutes=15),
    "1 hour": timedelta(hours=1),
    "6 hours": timedelta(hours=6),
    "1 day": timedelta(days=1),
}
_SERIES: Final[dict[str, tuple[str, ...]]] = {
    "One line for the type": (),
    "One line per device": ("device_id", "hostname"),
}
_READABLE_POINTS: Final = 200


def main() -> None:
    """Pick a type, metric, window and grouping; chart the trend; show and run its Flux."""
    selection = filters.current()
    period = selection.period
    st.title("Telemetry")
    st.caption(
        f"{selection.label}: devices of a declared type. Each window's value is the "
        "time-weighted mean of the stored step function (offline time counts for nothing)."
    )
    with data.shown_errors():
        src = data.sources()
        metrics = data.device_metrics(src)
    if metrics.is_empty():
        st.info("No device types are declared yet: see `fleetwatch device-types --help`.")
        return
    types = metrics["device_type"].unique(maintain_order=True).to_list()
    preset = selection.filters.device_type
    cols = st.columns(4)
    device_type = cols[0].selectbox(
        "Device type", types, index=types.index(preset) if preset in types else 0, key="tel_type"
    )
    declared = metrics.filter(pl.col("device_type") == device_type)
    labels = {
        f"{row['metric']} ({row['unit']})" if row["unit"] else row["metric"]: row["metric"]
        for row in declared.iter_rows(named=True)
    }
    metric_label = cols[1].selectbox("Metric", list(labels), key="tel_metric")
    fitting = [k for k, v in _WINDOWS.items() if period.length / v <= 1000] or ["1 day"]
    readable = [k for k in fitting if period.length / _WINDOWS[k] <= _READABLE_POINTS]
    window_label = cols[2].selectbox(
        "Window", fitting, index=fitting.index(readable[0]) if readable else 0, key="tel_window"
    )
    series = cols[3].selectbox("Series", list(_SERIES), key="tel_series")
    by = _SERIES[series]
    query = load.metric_trend_query(
        src.buckets,
        str(device_type),
        labels[metric_label],
        period,
        _WINDOWS[window_label],
        filters=selection.filters,
        by=by,
    )
    with data.shown_errors():
        trend = data.trend(src, query, by)
    devices = declared["devices"].to_list()[0] if declared.height else 0
    _headline(trend, devices)
    if trend.height:
        labelled = trend.with_columns(
            series=pl.col("hostname").fill_null("?") if by else pl.lit(str(device_type))
        )
        st.line_chart(
            labelled, x="time", y="value", color="series" if by else None, y_label=metric_label
        )
    else:
        st.info("No stored points of this metric in the period.")
    table(trend, f"telemetry_{device_type}_{labels[metric_label]}", selection)
    with st.expander("The Flux behind this chart"):
        st.caption("Library query `sensor_trend` over the `telemetry` measurement.")
        key = f"tel_flux_{zlib.crc32(query.flux.encode()):08x}"
        edited = st.text_area("Flux", query.flux, height=400, key=key)
        if st.button("Run this Flux", key="run_telemetry_flux", icon=":material/play_arrow:"):
            with data.shown_errors():
                result = data.run_query(src, edited)
            st.caption(f"{result.height} rows")
            table(result, "flux_result", selection)


def _headline(trend: pl.DataFrame, devices: int) -> None:
    live = trend.filter(pl.col("value").is_not_null() & (pl.col("covered_seconds") > 0))
    stats = live.select(
        mean=(pl.col("value") * pl.col("covered_seconds")).sum() / pl.col("covered_seconds").sum(),
        low=pl.col("value").min(),
        high=pl.col("value").max(),
    ).row(0, named=True)
    cols = st.columns(4)
    cols[0].metric("Mean over the period", _number(stats["mean"]), help="weighted by live time")
    cols[1].metric("Lowest window", _number(stats["low"]))
    cols[2].metric("Highest window", _number(stats["high"]))
    cols[3].metric("Devices of the type", count(devices))


def _number(value: object) -> str:
    if isinstance(value, int | float):
        return f"{value:.2f}"
    return "—"


main()
