"""Events: what needs attention now (rule events and open panel alarms together, most severe
and oldest first), acknowledging and resolving them, and the recent history."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import streamlit as st

from analytics.alerts import attention
from dashboards import alerting_data, data, filters
from dashboards.widgets import count, table
from stores.postgres import alerting_store as store


def main() -> None:
    """Headline counts, the attention list with its actions, and the event history."""
    selection = filters.current()
    st.title("Events")
    with data.shown_errors():
        src = data.sources()
        open_events = alerting_data.events(src, open_only=True)
        alarms = data.active_alarms(src, selection.filters)
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
        st.dataframe(todo, hide_index=True, width="stretch")
        _actions(src, todo)
    st.subheader("Recent events")
    with data.shown_errors():
        history = alerting_data.events(src, open_only=False)
    table(history, "events", selection)


def _actions(src: data.Sources, todo: pl.DataFrame) -> None:
    """Acknowledge or resolve one listed item, saying who did it and why."""
    labels = {
        f"{row['origin']} {row['id']}: {row['what']} ({row['hostname'] or '-'})": row
        for row in todo.iter_rows(named=True)
    }
    with st.form("event_action"):
        picked = st.selectbox("Item", list(labels))
        cols = st.columns(2)
        by = cols[0].text_input("Your name", key="event_by")
        note = cols[1].text_input("Note", key="event_note")
        buttons = st.columns(2)
        ack = buttons[0].form_submit_button("Acknowledge")
        resolve = buttons[1].form_submit_button("Resolve")
    if not (ack or resolve) or picked is None:
        return
    if not by.strip():
        st.error("Say who you are: the action is recorded with your name.")
        return
    row = labels[picked]
    with data.shown_errors():
        if row["origin"] == "alarm":
            if resolve:
                st.error("A panel alarm resolves when the panel reports it over.")
                return
            done = alerting_data.act(
                src, lambda c: store.acknowledge_alarm(c, row["id"], by, note or None)
            )
        elif ack:
            done = alerting_data.act(
                src, lambda c: store.acknowledge_event(c, row["id"], by, note or None)
            )
        else:
            done = alerting_data.act(
                src, lambda c: store.resolve_by_person(c, row["id"], by, note or None)
            )
    if done:
        st.success(f"{'Acknowledged' if ack else 'Resolved'}: {picked}")
        st.rerun()
    st.warning("Nothing changed: it was acknowledged or resolved already.")


main()
