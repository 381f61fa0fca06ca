"""Alarms: how many were raised, which are still active, and how fast they were handled."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import polars as pl
import streamlit as st

from analytics import alarms
from dashboards import data, filters
from dashboards.widgets import count, daily_bars, seconds, table

_DIMENSIONS: Final[dict[str, alarms.AlarmDimension]] = {
    "Type": "alarm_type",
    "Priority": "priority",
    "Zone": "zone",
    "Country": "country",
    "Device": "device",
}


def main() -> None:
    """Headline numbers, the daily chart by type, and the tables behind them."""
    selection = filters.current()
    period = selection.period
    st.title("Alarms")
    st.caption(f"Raised over: {selection.label.lower()}; active: however old")
    now = datetime.now(UTC)
    with data.shown_errors():
        src = data.sources()
        events = data.alarm_events(src, period, selection.filters)
        open_events = data.active_alarms(src, selection.filters)
    active = alarms.active_alarms(open_events, now=now)
    times = alarms.response_times(events).row(0, named=True)

    cols = st.columns(6)
    cols[0].metric("Alarms raised", count(times["alarms"]), help="input alarms, tests excluded")
    cols[1].metric("Active now", count(active.height))
    cols[2].metric("Critical active", count(active.filter(pl.col("priority") == "CRITICAL").height))
    cols[3].metric("Unacknowledged active", count(active.filter(~pl.col("acknowledged")).height))
    cols[4].metric(
        "Acknowledge, median",
        seconds(times["ack_p50_s"]),
        help=f"90th percentile: {seconds(times['ack_p90_s'])}",
    )
    cols[5].metric(
        "Resolve, median",
        seconds(times["resolve_p50_s"]),
        help=f"90th percentile: {seconds(times['resolve_p90_s'])}",
    )

    daily = alarms.daily_alarms(events, start=period.start, end=period.end, by="alarm_type")
    st.subheader("Alarm events per day (UTC)")
    if daily.height and daily["events"].sum():
        daily_bars(daily, y="events", color="alarm_type", y_label="events")
    else:
        st.info("No alarm events in this period.")

    tabs = st.tabs(["Active", "Counts", "Noisy devices", "Response times", "Sirens & turrets"])
    with tabs[0]:
        table(active, "active_alarms", selection)
    with tabs[1]:
        label = st.segmented_control("Count by", list(_DIMENSIONS), default="Type", key="alarms_by")
        by = _DIMENSIONS[label or "Type"]
        table(alarms.alarm_counts(events, by), f"alarm_counts_by_{by}", selection)
    with tabs[2]:
        table(alarms.noisy_devices(events, top=20), "noisy_devices", selection)
    with tabs[3]:
        table(alarms.response_times(events, "alarm_type"), "response_times", selection)
    with tabs[4]:
        table(alarms.output_activity(events, "device"), "output_activity", selection)
    table(daily, "daily_alarms", selection)


main()
