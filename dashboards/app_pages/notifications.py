"""Notifications: were people told? Deliveries by channel and outcome, the failures with
their errors, and sending a failed one again."""

from __future__ import annotations

import streamlit as st

from access import Permission, actions
from analytics.alerts import delivery_outcomes
from dashboards import alerting_data, data, filters, operate, session
from dashboards.widgets import count, table

_STATUSES = ["all", "pending", "held", "sent", "failed", "cancelled"]


def main() -> None:
    """Outcome counts, the delivery list (by status) and the retry of a failed delivery."""
    selection = filters.current()
    st.title("Notifications")
    with data.shown_errors():
        src = data.sources()
        everything = alerting_data.deliveries(src, None)
    outcomes = delivery_outcomes(everything)
    cols = st.columns(4)
    for col, status in zip(cols, ("sent", "pending", "failed", "cancelled"), strict=True):
        col.metric(status.capitalize(), count(everything.filter(status=status).height))
    st.subheader("By channel")
    st.dataframe(outcomes, hide_index=True, width="stretch")
    status = st.selectbox("Deliveries", _STATUSES, index=0, key="delivery_status")
    with data.shown_errors():
        shown = alerting_data.deliveries(src, None if status == "all" else status)
    table(shown, "deliveries", selection)
    failed = everything.filter(status="failed")
    if failed.height:
        st.subheader("Send a failed delivery again")
        who = session.person()
        denied = operate.not_yours(who, Permission.EDIT_RULES)
        with st.form("retry"):
            picked = st.selectbox("Delivery", failed["id"].to_list())
            go = st.form_submit_button("Retry now", help=denied)
        retry = go and picked is not None
        if retry and operate.run(lambda c: actions.retry_delivery(c, who, int(picked))):
            st.success(f"Delivery {picked} is queued again.")
            st.rerun()


main()
