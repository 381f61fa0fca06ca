"""The dashboard's entry point, as ``fleetwatch dashboard`` runs it with ``streamlit run``.

It lays out the navigation, draws the shared sidebar filters (so they persist across pages)
and runs the chosen page.
"""

from __future__ import annotations

import streamlit as st

from access import Permission
from dashboards import data, filters, session


def main() -> None:
    """Configure the page, sign the person in, draw the sidebar, run the page they chose."""
    st.set_page_config(page_title="fleetwatch", page_icon=":material/shield:", layout="wide")
    with data.shown_errors():
        who = session.gate()
    pages = [
        st.Page("app_pages/fleet.py", title="Fleet", icon=":material/router:", default=True),
        st.Page("app_pages/map.py", title="Map", icon=":material/map:"),
        st.Page(
            "app_pages/device.py",
            title="Device",
            icon=":material/developer_board:",
            url_path="device",
        ),
        st.Page("app_pages/events.py", title="Events", icon=":material/campaign:"),
        st.Page("app_pages/alarms.py", title="Alarms", icon=":material/notifications:"),
        st.Page("app_pages/commands.py", title="Commands", icon=":material/terminal:"),
        st.Page("app_pages/trends.py", title="Trends", icon=":material/show_chart:"),
        st.Page("app_pages/telemetry.py", title="Telemetry", icon=":material/sensors:"),
        st.Page("app_pages/robots.py", title="Robots", icon=":material/smart_toy:"),
        st.Page("app_pages/storage.py", title="Storage", icon=":material/database:"),
        st.Page("app_pages/rules.py", title="Rules", icon=":material/rule:"),
        st.Page("app_pages/notifications.py", title="Notifications", icon=":material/send:"),
        st.Page("app_pages/reports.py", title="Reports", icon=":material/summarize:"),
    ]
    # Pages a role may not use are not offered at all; each also checks again itself.
    if who.may(Permission.READ_AUDIT):
        pages.append(st.Page("app_pages/audit.py", title="Audit", icon=":material/policy:"))
    if who.may(Permission.MANAGE_USERS):
        pages.append(st.Page("app_pages/users.py", title="Users", icon=":material/group:"))
    page = st.navigation(pages, expanded=True)
    session.sidebar(who)
    with data.shown_errors():
        directory = data.directory(data.sources())
    filters.sidebar(directory)
    page.run()


main()
