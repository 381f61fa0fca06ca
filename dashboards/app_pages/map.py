"""Map: where the devices are installed and which need a look (open alarm, offline).

Drawn without map tiles (the dashboard may have no internet): the devices on a Mercator
projection of the area around them, with a graticule for scale.
"""

from __future__ import annotations

from typing import Final

import altair as alt
import polars as pl
import streamlit as st

from analytics import positions
from dashboards import data, filters
from dashboards.widgets import count, table

# The states' colours, in positions.MAP_STATES order: red, grey, green.
_COLOURS: Final = ("#d62728", "#7f7f7f", "#2ca02c")
# Graticule spacings (degrees): the first giving at most about eight lines is drawn.
_STEPS: Final = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0)
_MAX_LABELS: Final = 40  # more hostnames than this would hide the map: tooltips only
_LISTED: Final = (
    "hostname",
    "state",
    "open_alarms",
    "is_online",
    "last_seen",
    "kind",
    "zone",
    "country",
)


def main() -> None:
    """Headline counts, the map, the devices on it and those without a position."""
    selection = filters.current()
    st.title("Map")
    st.caption("Where the devices are installed, and their state now")
    with data.shown_errors():
        src = data.sources()
        fleet = data.devices(src, selection.period, selection.filters)
        places = data.positions(src, selection.filters)
        open_events = data.active_alarms(src, selection.filters)
    devices = positions.device_map(fleet, places, open_events)
    summary = positions.map_summary(devices).row(0, named=True)

    cols = st.columns(4)
    cols[0].metric(
        "On map", count(summary["on_map"]), help=f"of {summary['devices']} devices selected"
    )
    cols[1].metric("Online", count(summary["online"]))
    cols[2].metric("Offline", count(summary["offline"]))
    cols[3].metric("With open alarms", count(summary["with_open_alarms"]))

    placed = devices.filter(pl.col("latitude").is_not_null() & pl.col("longitude").is_not_null())
    extent = positions.map_extent(placed)
    if extent is None:
        st.info("No device of this selection has a position.")
    else:
        st.altair_chart(_map(placed, extent), width="stretch")
    table(
        placed.select(*_LISTED, "latitude", "longitude", "location_desc"),
        "map_devices",
        selection,
    )
    missing = devices.filter(pl.col("latitude").is_null() | pl.col("longitude").is_null())
    if missing.height:
        one = missing.height == 1
        st.subheader(f"{missing.height} device{'' if one else 's'} {'has' if one else 'have'} "
                     "no position")  # fmt: skip
        table(missing.select(_LISTED), "devices_without_position", selection)


def _map(placed: pl.DataFrame, extent: tuple[float, float, float, float]) -> alt.LayerChart:
    """The devices as circles coloured by state over a graticule, fitted to ``extent``."""
    west, south, east, north = extent
    area = {
        "type": "Feature",
        "properties": {},
        "geometry": {"type": "MultiPoint", "coordinates": [[west, south], [east, north]]},
    }
    span = max(east - west, north - south)
    step = next((s for s in _STEPS if span / s <= 8), _STEPS[-1])
    grid = alt.Chart(alt.graticule(step=[step, step])).mark_geoshape(
        fill=None, stroke="#d0d0d0", strokeWidth=0.5, clip=True
    )
    points = (
        alt.Chart(placed)
        .mark_circle(size=180, opacity=0.9, stroke="white", strokeWidth=1)
        .encode(
            longitude="longitude:Q",
            latitude="latitude:Q",
            color=alt.Color(
                "state:N",
                scale=alt.Scale(domain=list(positions.MAP_STATES), range=list(_COLOURS)),
                legend=alt.Legend(title="state", orient="top"),
            ),
            tooltip=[
                "hostname:N",
                "state:N",
                alt.Tooltip("open_alarms:Q", title="open alarms"),
                alt.Tooltip("last_seen:T", title="last seen (UTC)", format="%Y-%m-%d %H:%M"),
                "location_desc:N",
            ],
        )
    )
    layers: list[alt.Chart] = [grid, points]
    if placed.height <= _MAX_LABELS:
        layers.append(
            alt.Chart(placed)
            .mark_text(align="left", dx=9, fontSize=11, color="#555555")
            .encode(longitude="longitude:Q", latitude="latitude:Q", text="hostname:N")
        )
    return alt.LayerChart(
        layer=layers, height=520, projection=alt.Projection(type="mercator", fit=area)
    )


main()
