"""Device: one device's status now, its stored history as steps, and everything that names
it (alarms, rule events, commands, connections, dead letters).

The device comes from the URL (``?device=ESG_ALARM_0001``), from a row picked in another
page's table (``widgets.open_device``), or from the selectbox; the period from the sidebar.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import altair as alt
import polars as pl
import streamlit as st

from analytics import device
from analytics.alerts import attention
from analytics.selection import Period, ReportFilter
from dashboards import alerting_data, data, filters, operate, session
from dashboards.filters import Selection
from dashboards.widgets import DEVICE_KEY, count, seconds, table
from ingest.kinds import all_kinds
from ingest.kinds.telemetry import KIND as TELEMETRY

_PICK: Final = "device_pick"
_DEVICE_COLUMNS: Final = ("device_id", "hostname", "zone", "country")
# Shown as headline metrics, so left out of the status list.
_HEADLINE: Final = (
    "hostname",
    "kind",
    "device_type",
    "zone",
    "country",
    "firmware_version",
    "is_online",
    "last_seen",
)


def main() -> None:
    """Pick the device; its headline status, history chart, status list and event tables."""
    selection = filters.current()
    period = selection.period
    st.title("Device")
    with data.shown_errors():
        src = data.sources()
        known = data.directory(src)
    hostnames = sorted(h for h in known["hostname"].to_list() if h)
    if not hostnames:
        st.info("No device is registered yet.")
        return
    hostname = _pick(hostnames)
    st.caption(
        f"Status now; history, alarms, commands and logs over: {selection.label.lower()} "
        "(the sidebar's period; its device filters do not apply here)"
    )
    only = ReportFilter(hostnames=(hostname,))
    with data.shown_errors():
        found = data.device(src, hostname)
    if found.is_empty():
        st.warning(f"{hostname} is no longer an active device.")
        return
    row = found.row(0, named=True)
    with data.shown_errors():
        alarms = device.device_alarms(
            data.alarm_events(src, period, only), data.active_alarms(src, only)
        )
        events = data.rule_events(src, period, only)
        commands = data.commands(src, period, only)
        connections = data.connection_log(src, period, only)
        letters = data.dead_letters(src, period, (hostname,))
        points = data.device_history(src, period, row["device_id"], hostname, row["kind"])
        declared = _declared(src, row["kind"], row["device_type"])

    _status(row)
    _headline(alarms, events, commands, connections, letters)

    st.subheader("Stored history")
    _history(device.history_series(points), declared, period, key=f"device_series_{hostname}")

    tabs = st.tabs(
        ["Status", "Alarms", "Rule events", "Commands", "Connections", "Dead letters", "Points",
         "Act"]
    )  # fmt: skip
    with tabs[0]:
        st.dataframe(device.status_fields(found, leave_out=_HEADLINE), hide_index=True)
    with tabs[1]:
        table(alarms, "device_alarms", selection)
    with tabs[2]:
        table(events.drop("hostname", "zone"), "device_rule_events", selection)
    with tabs[3]:
        table(commands.drop(_DEVICE_COLUMNS), "device_commands", selection)
    with tabs[4]:
        table(connections.drop("device_id", "hostname"), "device_connections", selection)
    with tabs[5]:
        table(letters, "device_dead_letters", selection)
    with tabs[6]:
        # Without its hostname tag: this page's own tables do not link back to it.
        table(points.drop("hostname", strict=False), "device_points", selection)
    with tabs[7]:
        _act(src, hostname)
    if row["transport"] == "websocket":
        _snapshots(src, period, hostname, selection)


def _snapshots(src: data.Sources, period: Period, hostname: str, selection: Selection) -> None:
    """A WebSocket device's reported states (seed 003's state history)."""
    st.subheader("Reported states")
    st.caption("Every status the device sent over its WebSocket, whole (newest first).")
    with data.shown_errors():
        snapshots = data.state_snapshots(src, period, hostname)
    table(snapshots, "device_state_snapshots", selection)


def _headline(
    alarms: pl.DataFrame,
    events: pl.DataFrame,
    commands: pl.DataFrame,
    connections: pl.DataFrame,
    letters: pl.DataFrame,
) -> None:
    cols = st.columns(5)
    cols[0].metric("Open alarms", count(alarms.filter(pl.col("open")).height))
    cols[1].metric("Open rule events", count(events.filter(pl.col("status") != "resolved").height))
    cols[2].metric("Commands", count(commands.height))
    cols[3].metric(
        "Disconnections",
        count(connections.filter(pl.col("event") != "connected").height),
        help="disconnected and timed out, in the period",
    )
    cols[4].metric("Dead letters", count(letters.height))


def _act(src: data.Sources, hostname: str) -> None:
    """The operator's actions on this device: its open alarms and events, a command to it,
    cancelling its commands not finished yet."""
    who = session.person()
    operate.flash()
    only = ReportFilter(hostnames=(hostname,))
    with data.shown_errors():
        todo = attention(
            alerting_data.events(src, open_only=True).filter(pl.col("hostname") == hostname),
            data.active_alarms(src, only),
            datetime.now(UTC),
        )
        waiting = [c for c in data.open_commands(src) if c.hostname == hostname]
    st.markdown("**Acknowledge or resolve**")
    if todo.is_empty():
        st.caption("Nothing open on this device.")
    else:
        operate.attention_form(who, todo, key="device")
    st.markdown("**Send a command**")
    operate.command_form(who, [hostname], key="device", fixed=True)
    st.markdown("**Cancel its commands**")
    operate.cancel_form(who, waiting, key="device")


def _pick(hostnames: list[str]) -> str:
    """The device to show: the URL's ``device``, else the one last opened, else the first;
    the URL and the session then name the one shown."""
    asked = st.query_params.get("device")
    remembered = st.session_state.get(DEVICE_KEY)
    wanted = next((h for h in (asked, remembered) if h in hostnames), hostnames[0])
    if st.session_state.get(_PICK) != wanted:
        st.session_state[_PICK] = wanted
    picked = str(st.selectbox("Device", hostnames, key=_PICK, on_change=_picked))
    st.session_state[DEVICE_KEY] = picked
    st.query_params["device"] = picked
    return picked


def _picked() -> None:
    """The selectbox changed: the new device wins over the URL's."""
    st.query_params["device"] = st.session_state[_PICK]


def _status(row: dict[str, Any]) -> None:
    """The headline status: what the device is, where, and whether it is there now."""
    last_seen = row["last_seen"]
    age = (datetime.now(UTC) - last_seen).total_seconds() if last_seen else None
    what = st.columns([2, 3, 1, 1])  # kinds and types are long words
    what[0].metric("Kind", row["kind"])
    what[1].metric("Type", row["device_type"] or "—")
    what[2].metric("Zone", "—" if row["zone"] is None else str(row["zone"]))
    what[3].metric("Country", row["country"] or "—")
    now = st.columns(4)
    now[0].metric("Firmware", row["firmware_version"] or "—")
    now[1].metric("Online", "yes" if row["is_online"] else "no")
    now[2].metric(
        "Silent for",
        "never seen" if age is None else seconds(age),
        help=None if last_seen is None else f"last seen {last_seen:%Y-%m-%d %H:%M:%S} UTC",
    )


def _declared(src: data.Sources, kind: str, device_type: str | None) -> list[str]:
    """The device's metrics in declared order: its type's for a telemetry device, else its
    kind's numbers (and, for a robot, its parts' numbers, each part a kind)."""
    if kind == TELEMETRY:
        metrics = data.device_metrics(src)
        return metrics.filter(pl.col("device_type") == device_type)["metric"].to_list()
    parts = [k for k in all_kinds() if k.name == kind or k.name.startswith(f"{kind}_")]
    return [metric.name for part in parts for metric in part.numeric]


def _history(series: pl.DataFrame, declared: Sequence[str], period: Period, *, key: str) -> None:
    """A step chart per picked series (each value holds until the next point); ``key`` is
    the device's own, so each device starts on its first declared metric."""
    names = series["series"].unique().sort().to_list()
    if not names:
        st.info("No stored points of this device in the period.")
        return
    default = next(
        (n for metric in declared for n in names if n.rsplit("/", 1)[-1] == metric), names[0]
    )
    shown = st.multiselect("Values", names, default=[default], key=key)
    if not shown:
        return
    domain = [period.start.isoformat(), period.end.isoformat()]
    for name in shown:  # one chart each: the values have scales of their own
        chart = (
            alt.Chart(series.filter(pl.col("series") == name), height=180)
            .mark_line(interpolate="step-after", point=True)
            .encode(
                x=alt.X("time:T", title="time (UTC)", scale=alt.Scale(domain=domain)),
                y=alt.Y(
                    "value:Q", title=name, scale=alt.Scale(zero=False), axis=alt.Axis(format="~g")
                ),
                tooltip=[alt.Tooltip("time:T", format="%Y-%m-%d %H:%M:%S"), "value:Q"],
            )
        )
        st.altair_chart(chart, width="stretch")


main()
