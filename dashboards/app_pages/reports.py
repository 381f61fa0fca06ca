"""Reports: the daily and weekly reports as they were made and sent, each downloadable."""

from __future__ import annotations

import streamlit as st

from dashboards import alerting_data, data
from dashboards.widgets import count
from stores.postgres import reports_store


def main() -> None:
    """The report list, whom each went to, and the PDF of the one picked."""
    st.title("Reports")
    st.caption(
        "Made every day (the day before) and every Monday (the week before) by the delivery "
        "worker, and emailed to the recipients of the report template; "
        "`fleetwatch report send daily` makes one now."
    )
    with data.shown_errors(), alerting_data.connect(data.sources()) as conn:
        rows = reports_store.list_reports(conn)
    cols = st.columns(3)
    cols[0].metric("Reports", count(len(rows)))
    cols[1].metric("Emailed", count(sum(1 for r in rows if r["sent_at"] is not None)))
    cols[2].metric("Not emailed", count(sum(1 for r in rows if r["send_error"])))
    if not rows:
        st.info("No report yet.")
        return
    st.dataframe(
        [
            {
                "id": r["id"], "title": r["title"], "type": r["report_type"],
                "made": r["created_at"], "by": r["created_by"],
                "sent to": ", ".join(r["sent_to"] or []), "error": r["send_error"],
            }
            for r in rows
        ],
        hide_index=True,
        width="stretch",
    )  # fmt: skip
    picked = st.selectbox("Report", [r["id"] for r in rows], key="report_pick")
    if picked is not None:
        with data.shown_errors(), alerting_data.connect(data.sources()) as conn:
            title, pdf = reports_store.pdf_of(conn, int(picked))
        st.download_button(
            f"Download {title} (PDF)", pdf, file_name=f"report-{picked}.pdf",
            mime="application/pdf",
        )  # fmt: skip


main()
