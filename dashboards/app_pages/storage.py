"""Storage: what the CDC saved, heartbeats received against points stored."""

from __future__ import annotations

from typing import Literal

import streamlit as st

from analytics import storage, trends
from dashboards import data, filters
from dashboards.widgets import count, daily_bars, percent, table


def _bytes(value: object) -> str:
    if not isinstance(value, int):
        return "—"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value} B"


def _source(selection: filters.Selection) -> Literal["raw", "hourly"]:
    """Count the raw points only where that reads little; else the hourly task's counts."""
    period = selection.period
    small = trends.choose_source(period.start, period.end, fleet_devices=selection.fleet_devices)
    return "raw" if small == "raw" else "hourly"


def main() -> None:
    """Headline savings, received against written per day, and the stored points by kind."""
    selection = filters.current()
    st.title("Storage")
    st.caption(f"Heartbeats over: {selection.label.lower()} (hours starting in the period)")
    with data.shown_errors():
        src = data.sources()
        daily = data.heartbeat_totals(src, selection.period, selection.filters, "day")
        per_device = data.heartbeat_totals(src, selection.period, selection.filters, "device")
        points = data.points_per_day(src, selection.period, selection.filters, _source(selection))
    overall = storage.cdc_savings(daily).row(0, named=True)

    cols = st.columns(5)
    cols[0].metric("Heartbeats received", count(overall["received"]))
    cols[1].metric("Points written", count(overall["written"]))
    cols[2].metric("Reduction", percent(overall["reduction"]))
    cols[3].metric("Line protocol saved", _bytes(overall["saved_bytes"]))
    cols[4].metric("Bytes per point", f"{storage.heartbeat_point_bytes():.0f} B")

    per_day = storage.cdc_savings(daily, "day")
    st.subheader("Received and written per day (UTC)")
    if per_day.height:
        daily_bars(
            per_day.unpivot(index="day", on=["written", "saved"], variable_name="heartbeats"),
            y="value",
            color="heartbeats",
            y_label="heartbeats",
        )
    else:
        st.info("No heartbeats counted in this period.")

    days, kinds, devices, stored = st.tabs(
        ["Per day", "Per kind", "Per device", "Points in InfluxDB"]
    )
    with days:
        table(per_day, "cdc_savings_by_day", selection)
    with kinds:
        # Readings of telemetry devices are counted as heartbeats are: received, written.
        table(storage.cdc_savings(per_device, "kind"), "cdc_savings_by_kind", selection)
    with devices:
        table(storage.cdc_savings(per_device, "device"), "cdc_savings_by_device", selection)
    with stored:
        if _source(selection) == "hourly":
            st.caption("Counted by the hourly task: the current hour is not included yet.")
        if points.height:
            daily_bars(points, y="points", color="change_type", y_label="points")
        table(points, "points_per_day", selection)


main()
