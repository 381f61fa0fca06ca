"""Trends: the time-weighted series of a sensor field, and the Flux behind it.

The series comes from ``analytics.load.load_trend``: raw points for picked devices over up to
two days, their hourly downsample beyond, and the per-zone hourly rollup for a whole fleet,
zone or country (unless it is only a few hundred device-hours), so that no page reads every
device's points. A history younger than an hour (a fleet that has just started) is drawn over
its own span, at minute windows, rather than as one point of the period's coarse windows. An
expander shows the exact Flux, editable and runnable, and the ready-made queries of the Flux
library can be run with their parameters; both run within the dashboard's time and row limits.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta
from typing import Final

import polars as pl
import streamlit as st

from access import Permission
from analytics import trends
from analytics.load import DEVICE_TAGS
from dashboards import data, filters, session
from dashboards.data import Sources
from dashboards.filters import Selection
from dashboards.trend_view import (
    WINDOWS,
    drawn_period,
    editable_flux,
    flux_result,
    headline,
    window_choice,
    window_picker,
)
from dashboards.widgets import table
from ingest.kinds.panel import PANEL
from stores.influx.flux_library import ParamValue, flux_time, list_queries, load_query

# The panel's numbers, as its kind declares them.
_FIELDS: Final = {metric.label: metric.name for metric in PANEL.numeric}
_SERIES: Final[dict[str, tuple[str, ...]]] = {
    "One line for the selection": (),
    "One line per zone": ("zone",),
    "One line per country": ("country",),
    "One line per device": DEVICE_TAGS,
}
_SOURCES: Final = {
    "raw": "Raw points",
    "hourly": "Hourly",
    "groups": "Zone rollup",
}
_MAX_DEVICE_LINES: Final = 50


def main() -> None:
    """Pick a field, window and grouping; chart the trend; show and run its Flux."""
    selection = filters.current()
    st.title("Trends")
    st.caption(
        f"{selection.label}: pick devices or a zone in the sidebar. Each window's value is "
        "the time-weighted mean of the stored step function (offline time counts for nothing)."
    )
    cols = st.columns(3)
    field_label = cols[0].selectbox("Field", list(_FIELDS), key="trend_field")
    field = _FIELDS[field_label]
    with data.shown_errors():
        src = data.sources()
        since = data.history_start(src, field, selection.period, selection.filters)
    period = drawn_period(selection.period, since, datetime.now(UTC))
    source = trends.choose_source(period.start, period.end, fleet_devices=selection.fleet_devices)
    windows = {
        k: v for k, v in WINDOWS.items() if source == "raw" or v % timedelta(hours=1) == timedelta()
    }
    fitting, default = window_choice(period, windows)
    window_label = window_picker(cols[1], fitting, default, key="trend_window")
    series = cols[2].selectbox(
        "Series",
        list(_SERIES),
        index=3 if selection.filters.hostnames else 0,
        key="trend_series",
    )
    by = _SERIES[series]
    if by == DEVICE_TAGS and not selection.filters.hostnames:
        st.warning(
            f"One line per device needs devices picked in the sidebar (up to "
            f"{_MAX_DEVICE_LINES}); showing one line for the selection."
        )
        by = ()
    window = WINDOWS[window_label]

    with data.shown_errors():
        query = data.trend_query(
            src,
            field=field,
            period=period,
            window=window,
            filters=selection.filters,
            by=by,
            fleet_devices=selection.fleet_devices,
        )
        trend = data.trend(src, query, by)
    if query.source == "groups":
        latest = (
            "the hours since from the raw points"
            if query.tail
            else "pick devices in the sidebar for the latest hours"
        )
        st.caption(
            "The selection is read from the hourly per-zone rollup up to the last hour the "
            f"downsampling task has written, {latest}."
        )
    if period != selection.period:
        st.caption(
            f"The selection's stored history starts at {period.start:%Y-%m-%d %H:%M} UTC: "
            "the chart covers it alone."
        )
    headline(trend, "Source", _SOURCES[query.source])
    if trend.height:
        labelled = trend.with_columns(series=_label(by))
        st.line_chart(
            labelled, x="time", y="value", color="series" if by else None, y_label=field_label
        )
    else:
        st.info("No stored points for this selection and period.")
    table(trend, f"trend_{field}", selection)

    if not session.person().may(Permission.QUERY_FLUX):
        # Reading the Flux is harmless; running one's own is an engineer's (operator, admin).
        with st.expander("The Flux behind this chart"):
            st.caption("Running your own Flux is for operators and admins.")
            st.code(query.flux, language="javascript")
        return
    with st.expander("The Flux behind this chart"):
        st.caption(f"Library query `{query.name}` ({_SOURCES[query.source]}). Edit and run it.")
        editable_flux(src, query.flux, selection, prefix="flux", run_key="run_trend_flux")
        if query.tail:
            st.caption("The latest hours, not rolled up yet, from the raw points:")
            st.code(query.tail, language="javascript")
    with st.expander("Ready-made Flux queries"):
        _library(src, selection)


def _label(by: tuple[str, ...]) -> pl.Expr:
    if not by:
        return pl.lit("selection")
    if by == ("zone",):
        return pl.concat_str(pl.lit("zone "), pl.col("zone").fill_null("?"))
    if by == ("country",):
        return pl.col("country").fill_null("?")
    return pl.col("hostname").fill_null("?")


def _library(src: Sources, selection: Selection) -> None:
    queries = {q.name: q for q in list_queries()}
    name = st.selectbox("Query", list(queries), key="library_query")
    query = queries[name]
    st.markdown(query.description)
    suggested = _suggested(src, selection)
    values: dict[str, ParamValue] = {}
    for param in query.params:
        default = suggested.get(param.name, param.default or "")
        text = st.text_input(
            f"{param.name} ({param.type})",
            default,
            help=param.description,
            key=f"library_{name}_{param.name}_{zlib.crc32(default.encode()):08x}",
        )
        # An emptied box means "", for text; for other types it means the default.
        if text or param.type == "string":
            values[param.name] = text
    with data.shown_errors():
        flux = load_query(name).render(values)
    st.code(flux, language="javascript")
    if st.button("Run", key=f"run_library_{name}", icon=":material/play_arrow:"):
        flux_result(src, flux, selection, f"flux_{name}")


def _suggested(src: Sources, selection: Selection) -> dict[str, str]:
    """Parameter values from the dashboard's buckets and the sidebar's selection."""
    filters_ = selection.filters
    return {
        "bucket": src.buckets.raw,
        "hourly_bucket": src.buckets.hourly,
        "start": flux_time(selection.period.start),
        "stop": flux_time(selection.period.end),
        "hostnames": ",".join(filters_.hostnames),
        "hostname": filters_.hostnames[0] if filters_.hostnames else "",
        "zone": "" if filters_.zone is None else str(filters_.zone),
        "country": filters_.country or "",
    }


main()
