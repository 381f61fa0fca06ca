"""The Device and Map pages render the dataset's devices from the real stores, read-only."""

from __future__ import annotations

import json
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from tests.dashboards.signin import signed_in_app


def _metrics(at: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def _device(hostname: str) -> AppTest:
    """The app switched to the Device page with ``?device=hostname`` in its URL."""
    at = signed_in_app()
    at.query_params["device"] = hostname
    return _ok(at.switch_page("app_pages/device.py").run())


def _tables(at: AppTest) -> dict[str, Any]:
    """The page's tables (after its status list) by the name of their CSV download."""
    labels = [button.proto.label for button in at.get("download_button")]
    names = [label.removeprefix("Download ").removesuffix(" (CSV)") for label in labels]
    return {name: frame.value for name, frame in zip(names, at.dataframe[1:], strict=True)}


@pytest.mark.usefixtures("dashboard_env")
def test_device_page_shows_the_device_named_in_the_url() -> None:
    """?device=ESG_ALARM_0002 shows that panel: online in zone 3, its open TAMPER, its failed
    command, the acknowledged rule event, one drop in the connection log, its dead letter."""
    at = _device("ESG_ALARM_0002")
    assert at.selectbox(key="device_pick").value == "ESG_ALARM_0002"
    assert at.query_params["device"] == "ESG_ALARM_0002"
    metrics = _metrics(at)
    assert (metrics["Kind"], metrics["Zone"], metrics["Country"]) == ("panel", "3", "ES")
    assert metrics["Online"] == "yes"
    assert metrics["Open alarms"] == "1"
    assert metrics["Open rule events"] == "1"
    assert metrics["Commands"] == "1"
    assert metrics["Disconnections"] == "1"
    assert metrics["Dead letters"] == "1"
    status = at.dataframe[0].value
    fields = dict(zip(status["field"], status["value"], strict=True))
    assert fields["device_state"] == "NORMAL"
    assert fields["device_synced"] == "False"
    assert fields["rssi"] == "-60"
    tables = _tables(at)
    alarms = tables["device_alarms"]
    assert list(zip(alarms["alarm_type"], alarms["open"], strict=True)) == [("TAMPER", True)]
    commands = tables["device_commands"]
    assert list(zip(commands["status"], commands["retry_count"], strict=True)) == [("FAILED", 2)]
    events = tables["device_rule_events"]
    assert list(events["rule"]) == ["Panel alarm TAMPER"]
    assert list(events["acknowledged_by"]) == ["ana"]
    connections = tables["device_connections"]
    assert list(connections["event"]) == ["connected", "disconnected"]  # newest first
    letters = tables["device_dead_letters"]
    assert list(zip(letters["reason"], letters["payload_bytes"], strict=True)) == [
        ("undecodable", 4)
    ]
    points = tables["device_points"]
    assert len(points) == 25
    assert set(points["temperature"]) == {24.0}


@pytest.mark.usefixtures("dashboard_env")
def test_device_page_charts_the_stored_history_as_steps() -> None:
    """A panel's chart starts on its temperature heartbeats; picking a telemetry device in
    the selectbox puts it in the URL and charts its first declared metric, read by device id
    from its metric history; both drawn as steps."""
    at = _device("ESG_ALARM_0001")
    assert at.multiselect(key="device_series_ESG_ALARM_0001").value == ["temperature"]
    spec = _chart_specs(at)[0]
    assert spec["mark"]["interpolate"] == "step-after"
    _ok(at.selectbox(key="device_pick").select("VIB-T002").run())
    assert at.query_params["device"] == "VIB-T002"
    assert _metrics(at)["Type"] == "vibration_sensor"
    assert at.multiselect(key="device_series_VIB-T002").value == ["vibration"]
    points = _tables(at)["device_points"]
    assert set(points["vibration"]) == {4.0}
    assert len(points) == 25


@pytest.mark.usefixtures("dashboard_env")
def test_picking_a_row_of_a_fleet_table_opens_its_device() -> None:
    """Selecting ESG_ALARM_0003's row in the Fleet page's stale table opens the Device page
    on it: offline, its old PANIC2 open, its timeout in the connection log."""
    at = _ok(signed_in_app())
    stale = at.dataframe[2].value
    assert list(stale["hostname"]) == ["ESG_ALARM_0003"]
    at.session_state["rows_stale_devices"] = {"selection": {"rows": [0], "columns": []}}
    _ok(at.run())
    assert at.title[0].value == "Device"
    assert at.selectbox(key="device_pick").value == "ESG_ALARM_0003"
    metrics = _metrics(at)
    assert metrics["Online"] == "no"
    assert metrics["Open alarms"] == "1"
    assert metrics["Disconnections"] == "1"
    assert list(_tables(at)["device_alarms"]["alarm_type"]) == ["PANIC2"]


@pytest.mark.usefixtures("dashboard_env")
def test_map_places_the_panels_and_lists_the_devices_without_a_position() -> None:
    """Map: the three panels are placed, the four other devices are listed as without a
    position; ESG_ALARM_0002 (open TAMPER) is drawn in the open-alarm colour."""
    at = _ok(signed_in_app().switch_page("app_pages/map.py").run())
    metrics = _metrics(at)
    assert metrics["On map"] == "3"
    assert metrics["Online"] == "6"
    assert metrics["Offline"] == "1"
    assert metrics["With open alarms"] == "2"
    assert any(h.value == "4 devices have no position" for h in at.subheader)
    placed, missing = at.dataframe[0].value, at.dataframe[1].value
    assert dict(zip(placed["hostname"], placed["state"], strict=True)) == {
        "ESG_ALARM_0001": "online",
        "ESG_ALARM_0002": "open alarm",
        "ESG_ALARM_0003": "open alarm",  # offline, and its PANIC2 is still open
    }
    assert sorted(missing["hostname"]) == ["VIB-T001", "VIB-T002", "tonypi_01", "tonypi_02"]
    (spec,) = _chart_specs(at)
    circles = next(layer for layer in spec["layer"] if layer["mark"]["type"] == "circle")
    labels = next(layer for layer in spec["layer"] if layer["mark"]["type"] == "text")
    assert labels["encoding"]["text"]["field"] == "hostname"
    colour = circles["encoding"]["color"]
    scale = dict(zip(colour["scale"]["domain"], colour["scale"]["range"], strict=True))
    assert colour["field"] == "state"
    assert scale["open alarm"] == "#d62728"
    assert spec["projection"]["type"] == "mercator"


@pytest.mark.usefixtures("dashboard_env")
def test_map_follows_the_sidebar_filters() -> None:
    """Zone 5 leaves one device on the map: ESG_ALARM_0003, with its open alarm."""
    at = _ok(signed_in_app())
    at.sidebar.selectbox(key="filter_zone").select("5").run()
    at = _ok(at.switch_page("app_pages/map.py").run())
    metrics = _metrics(at)
    assert (metrics["On map"], metrics["Offline"], metrics["With open alarms"]) == ("1", "1", "1")
    assert not at.subheader  # every device of zone 5 has a position
    assert list(at.dataframe[0].value["hostname"]) == ["ESG_ALARM_0003"]


def _chart_specs(at: AppTest) -> list[dict[str, Any]]:
    """The Vega-Lite specs of the page's Altair charts."""
    return [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]
