"""Events: what needs attention now (rule events, open panel alarms and the last day's alarms
nobody acknowledged, most severe and oldest first), acknowledging and resolving them, and the
recent history."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import streamlit as st

from analytics.alerts import attention
from dashboards import alerting_data, data, filters, operate, session
from dashboards.widgets import count, device_table, table


def main() -> None:
    """Headline counts, the attention list with its actions, and the event history."""
    selection = filters.current()
    st.title("Events")
    operate.flash()
    with data.shown_errors():
        src = data.sources()
        open_events = alerting_data.events(src, open_only=True)
        # Open alarms, and the last day's that are over but nobody acknowledged.
        alarms = pl.concat(
            [
                data.active_alarms(src, selection.filters),
                data.unacknowledged_alarms(src, selection.filters),
            ]
        )
    now = datetime.now(UTC)
    todo = attention(open_events, alarms, now)
    cols = st.columns(4)
    for col, severity in zip(cols, ("critical", "warning", "info"), strict=False):
        col.metric(f"Open {severity}", count(todo.filter(severity=severity).height))
    waiting = todo.filter(status="new")["age_minutes"].to_list()
    cols[3].metric("Oldest unacknowledged", f"{max(waiting):.0f} min" if waiting else "—")
    st.subheader("Needs attention now")
    if todo.is_empty():
        st.success("Nothing open: no rule event and no panel alarm waits.")
    else:
        device_table(todo, "rows_attention")
        operate.attention_form(session.person(), todo, key="events")
    st.subheader("Recent events")
    with data.shown_errors():
        history = alerting_data.events(src, open_only=False)
    table(history, "events", selection)


main()
