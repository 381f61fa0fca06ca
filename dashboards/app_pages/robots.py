"""Robots: battery levels, servo temperatures, jobs in progress and their history."""

from __future__ import annotations

import polars as pl
import streamlit as st

from analytics import robots
from dashboards import data, filters
from dashboards.widgets import count, percent, table


def main() -> None:
    """Headline counts, each robot's battery and servos against its thresholds, its jobs."""
    selection = filters.current()
    st.title("Robots")
    st.caption(f"Condition now; jobs active now or started over: {selection.label.lower()}")
    with data.shown_errors():
        src = data.sources()
        fleet = data.robots(src)
        jobs = data.jobs(src, selection.period, selection.filters)
    if selection.filters.hostnames:
        fleet = fleet.filter(pl.col("robot_id").is_in(selection.filters.hostnames))
    if fleet.is_empty():
        st.info("No robot has reported yet.")
        return
    summary = robots.robot_summary(fleet).row(0, named=True)
    outcome = robots.job_summary(jobs).row(0, named=True)
    cols = st.columns(6)
    cols[0].metric("Robots", count(summary["robots"]))
    cols[1].metric("Online", count(summary["online"]))
    cols[2].metric("Low battery", count(summary["battery_low"]))
    cols[3].metric("Servos hot", count(summary["servos_hot"]))
    cols[4].metric("Jobs in progress", count(outcome["active"]))
    cols[5].metric("Job success", percent(outcome["success_rate"]))

    judged = robots.robot_condition(fleet)
    st.subheader("Battery")
    st.bar_chart(
        judged.select("robot_id", "battery_percentage", "battery"),
        x="robot_id",
        y="battery_percentage",
        color="battery",
        x_label="robot",
        y_label="battery (%)",
        horizontal=True,
    )
    table(
        judged.select(
            "robot_id",
            "name",
            "status",
            "is_online",
            "battery_percentage",
            "charging",
            "battery",
            "hottest_servo_c",
            "servos_heat",
            "last_seen",
        ),
        "robots",
        selection,
    )
    active, history = st.tabs(["Jobs in progress", "Job history"])
    with active:
        table(jobs.filter(pl.col("status") == "active"), "jobs_active", selection)
    with history:
        table(jobs.filter(pl.col("status") != "active"), "jobs_history", selection)


main()
