"""Fleet: how many devices, where, in which state, and which ones need a look."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import polars as pl
import streamlit as st

from analytics import fleet
from dashboards import data, filters
from dashboards.widgets import count, percent, table

_DIMENSIONS: Final[dict[str, fleet.FleetDimension]] = {
    "Kind": "kind",
    "Type": "device_type",
    "Transport": "transport",
    "State": "device_state",
    "Zone": "zone",
    "Country": "country",
    "Firmware": "firmware_version",
}


def main() -> None:
    """Headline counts, the breakdown chart, and the devices that need attention."""
    selection = filters.current()
    st.title("Fleet")
    st.caption(f"Status now; disconnections over: {selection.label.lower()}")
    now = datetime.now(UTC)
    with data.shown_errors():
        devices = data.devices(data.sources(), selection.period, selection.filters)
    summary = fleet.fleet_summary(devices, now=now).row(0, named=True)

    cols = st.columns(6)
    cols[0].metric("Devices", count(summary["devices"]))
    cols[1].metric(
        "Online", count(summary["online"]), percent(summary["online_share"]), delta_color="off"
    )
    cols[2].metric("Offline", count(summary["offline"]))
    cols[3].metric("Stale (> 1 h)", count(summary["stale"]))
    cols[4].metric("Not synced", count(summary["not_synced"]))
    cols[5].metric("With errors", count(summary["with_errors"]))
    cols = st.columns(6)
    cols[0].metric(f"Weak RSSI (< {fleet.WEAK_RSSI_DBM} dBm)", count(summary["weak_rssi"]))
    cols[1].metric("Lowest free heap", count(summary["min_free_heap"]), help="bytes")
    cols[2].metric("Reboots (lifetime)", count(summary["reboots"]))
    cols[3].metric("Disconnections", count(summary["disconnects"]))

    label = st.segmented_control(
        "Break down by", list(_DIMENSIONS), default="State", key="fleet_by"
    )
    by = _DIMENSIONS[label or "State"]
    breakdown = fleet.fleet_breakdown(devices, by).with_columns(
        devices_by=pl.col(by).cast(pl.String).fill_null("unknown")
    )
    st.bar_chart(
        breakdown.unpivot(index="devices_by", on=["online", "offline"], variable_name="status"),
        x="devices_by",
        y="value",
        color="status",
        x_label=label,
        y_label="devices",
        horizontal=True,
    )
    table(breakdown.drop("devices_by"), f"fleet_by_{by}", selection)

    health, stale, unsynced = st.tabs(["Health", "Stale", "Not synced"])
    with health:
        table(fleet.device_health(devices), "device_health", selection)
    with stale:
        table(fleet.stale_devices(devices, now=now), "stale_devices", selection)
    with unsynced:
        table(fleet.unsynced_devices(devices), "unsynced_devices", selection)


main()
