"""Telemetry: the time-weighted trend of a device type's metric, and the Flux behind it.

A field engineer picks a device type and one of its declared metrics; the devices are the
type's (or those picked in the sidebar). The values are the same step-function means as on
Trends, read from the raw telemetry points of the period, or from their hourly downsample
for periods longer than two days.
"""

from __future__ import annotations

from typing import Final

import polars as pl
import streamlit as st

from analytics import load
from dashboards import data, filters
from dashboards.trend_view import WINDOWS, editable_flux, headline, window_choice
from dashboards.widgets import count, table

_SERIES: Final[dict[str, tuple[str, ...]]] = {
    "One line for the type": (),
    "One line per device": ("device_id", "hostname"),
}


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
    fitting, default = window_choice(period, WINDOWS)
    window_label = cols[2].selectbox("Window", fitting, index=default, key="tel_window")
    series = cols[3].selectbox("Series", list(_SERIES), key="tel_series")
    by = _SERIES[series]
    query = load.metric_trend_query(
        src.buckets,
        str(device_type),
        labels[metric_label],
        period,
        WINDOWS[window_label],
        filters=selection.filters,
        by=by,
    )
    with data.shown_errors():
        trend = data.trend(src, query, by)
    devices = declared["devices"].to_list()[0] if declared.height else 0
    headline(trend, "Devices of the type", count(devices))
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
        st.caption(f"Library query `{query.name}` over the {query.source} telemetry data.")
        editable_flux(src, query.flux, selection, prefix="tel_flux", run_key="run_telemetry_flux")


main()
