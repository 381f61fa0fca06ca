"""Commands: do they succeed, how often are they retried, and how fast do devices answer."""

from __future__ import annotations

from typing import Final

import streamlit as st

from analytics import commands
from dashboards import data, filters, operate, session
from dashboards.widgets import count, daily_bars, percent, seconds, table

_OUTCOMES: Final = ["completed", "failed", "timeout", "cancelled", "in_flight"]


def main() -> None:
    """Headline success rate and latencies, outcomes per day, and the breakdowns."""
    selection = filters.current()
    st.title("Commands")
    st.caption(f"Queued over: {selection.label.lower()}")
    with data.shown_errors():
        log = data.commands(data.sources(), selection.period, selection.filters)
    overall = commands.command_success(log).row(0, named=True)

    cols = st.columns(6)
    cols[0].metric("Commands", count(overall["total"]))
    cols[1].metric("Success rate", percent(overall["success_rate"]))
    cols[2].metric("Failed or timed out", count(overall["failed"] + overall["timeout"]))
    cols[3].metric(
        "Retries per command",
        "—" if overall["retries_per_command"] is None else f"{overall['retries_per_command']:.2f}",
    )
    cols[4].metric(
        "Sent → acknowledged, p50",
        seconds(overall["ack_p50_s"]),
        help=f"p95: {seconds(overall['ack_p95_s'])}",
    )
    cols[5].metric(
        "Sent → completed, p50",
        seconds(overall["complete_p50_s"]),
        help=f"p95: {seconds(overall['complete_p95_s'])}",
    )

    by_day = commands.command_success(log, "day")
    st.subheader("Outcomes per day (UTC)")
    if by_day.height:
        daily_bars(
            by_day.unpivot(index="day", on=_OUTCOMES, variable_name="outcome"),
            y="value",
            color="outcome",
            y_label="commands",
        )
    else:
        st.info("No commands in this period.")

    by_type, by_device, daily = st.tabs(["By type", "By device", "By day"])
    with by_type:
        table(commands.command_success(log, "command_type"), "commands_by_type", selection)
    with by_device:
        table(commands.command_success(log, "device"), "commands_by_device", selection)
    with daily:
        table(by_day, "commands_by_day", selection)

    who = session.person()
    st.subheader("Send a command")
    operate.flash()
    with data.shown_errors():
        directory = data.directory(data.sources())
    countries = sorted(c for c in directory["country"].unique().to_list() if c)
    operate.command_form(who, directory["hostname"].to_list(), key="commands", countries=countries)
    st.subheader("Cancel commands")
    with data.shown_errors():
        waiting = data.open_commands(data.sources())
    operate.cancel_form(who, waiting, key="commands")


main()
