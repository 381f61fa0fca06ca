"""Audit: who signed in, acknowledged, commanded and changed what, and every refusal.

For admins. Filters by period (the sidebar's), category, level, person and device; the rows
download as CSV.
"""

from __future__ import annotations

import polars as pl
import streamlit as st

from access import Permission
from dashboards import data, filters, session
from dashboards.widgets import count, table
from stores.postgres import people_store

_COLUMNS = {
    "timestamp": pl.Datetime("us", "UTC"), "level": pl.String(), "category": pl.String(),
    "username": pl.String(), "device": pl.String(), "message": pl.String(),
    "source": pl.String(), "details": pl.String(),
}  # fmt: skip
_CATEGORIES = ["auth", "alarm", "event", "command", "rule", "template", "silence",
               "notification", "report", "user", "page"]  # fmt: skip
_LIMIT = 5000


def main() -> None:
    """Filters, headline counts and the audit rows."""
    who = session.person()
    session.require_page(who, Permission.READ_AUDIT, "read the audit trail")
    selection = filters.current()
    st.title("Audit")
    cols = st.columns(4)
    category = cols[0].selectbox("Category", ["(all)", *_CATEGORIES], key="audit_category")
    level = cols[1].selectbox(
        "Level", ["(all)", "INFO", "WARNING", "ERROR", "CRITICAL"], key="audit_level"
    )
    username = cols[2].text_input("Person", key="audit_user").strip()
    device = cols[3].text_input("Device", key="audit_device").strip()
    with data.shown_errors(), session.connect() as conn:
        rows = people_store.list_audit(
            conn,
            start=selection.period.start,
            stop=None,  # up to this moment: the period ends at a whole minute
            category=None if category == "(all)" else category,
            level=None if level == "(all)" else level,
            username=username or None,
            device=device or None,
            limit=_LIMIT,
        )
    frame = pl.DataFrame(
        [{**row, "details": str(row["details"] or "")} for row in rows], schema=_COLUMNS
    )
    metrics = st.columns(3)
    metrics[0].metric("Entries", count(frame.height))
    metrics[1].metric("Refused or failed", count(frame.filter(pl.col("level") != "INFO").height))
    signed = frame.filter(pl.col("message") == "signed in")
    metrics[2].metric("Sign-ins", count(signed.height))
    if frame.height == _LIMIT:
        st.caption(f"The newest {_LIMIT:,} entries; narrow the filters to see older ones.")
    table(frame, "audit", selection)


main()
