"""Every page renders from the real stores, read-only, and shows the fleet's numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from fleetwatch.dashboard_cli import APP
from fleetwatch.settings import InfluxSettings
from stores.influx import make_client
from tests.dashboards.signin import signed_in_app
from tests.support.history import heartbeat, tags, write

TIMEOUT_S = 60


def _metrics(at: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def _open(page: str | None = None) -> AppTest:
    """The app after its first run, switched to ``page`` (the Fleet page when None)."""
    at = signed_in_app()
    if page is not None:
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


@pytest.mark.usefixtures("dashboard_env")
def test_fleet_page_counts_the_devices() -> None:
    """Fleet shows the totals of every kind, the breakdown table and one CSV per table."""
    at = _open()
    assert at.title[0].value == "Fleet"
    metrics = _metrics(at)
    assert metrics["Devices"] == "7"  # three panels, two telemetry devices, two robots
    assert metrics["Online"] == "6"
    assert metrics["Offline"] == "1"
    assert metrics["Stale (> 1 h)"] == "1"
    assert metrics["Not synced"] == "1"  # only panels take an id
    breakdown, health, stale, unsynced = at.dataframe
    assert len(health.value) == 7
    assert len(stale.value) == 1
    assert len(unsynced.value) == 1
    assert len(breakdown.value) == 3  # NORMAL, OFFLINE and the other kinds' UNKNOWN
    assert len(at.get("download_button")) == 4
    at.segmented_control(key="fleet_by").set_value("Kind").run()
    kinds = at.dataframe[0].value
    assert dict(zip(kinds["kind"], kinds["devices"], strict=True)) == {
        "panel": 3,
        "telemetry": 2,
        "robot": 2,
    }


@pytest.mark.usefixtures("dashboard_env")
def test_robots_page_shows_batteries_servos_and_jobs() -> None:
    """Robots: the low battery and the warm servo are judged by the robot's thresholds; one
    job in progress, one of two finished jobs completed."""
    at = _open("robots")
    metrics = _metrics(at)
    assert metrics["Robots"] == "2"
    assert metrics["Online"] == "2"
    assert metrics["Low battery"] == "1"
    assert metrics["Servos hot"] == "1"
    assert metrics["Jobs in progress"] == "1"
    assert metrics["Job success"] == "50.0%"
    shown = at.dataframe[0].value
    judged = dict(
        zip(
            shown["robot_id"], zip(shown["battery"], shown["servos_heat"], strict=True), strict=True
        )
    )
    assert judged == {"tonypi_02": ("low", "warning"), "tonypi_01": ("ok", "ok")}
    active, history = at.dataframe[1].value, at.dataframe[2].value
    assert list(active["job_key"]) == ["J-1"]
    assert sorted(history["status"]) == ["completed", "failed"]


@pytest.mark.usefixtures("dashboard_env")
def test_kind_and_type_filters_pick_telemetry_devices() -> None:
    """The sidebar's Kind and Type narrow the fleet to the telemetry devices of a type."""
    at = _open()
    at.sidebar.selectbox(key="filter_kind").select("telemetry").run()
    assert not at.exception
    assert _metrics(at)["Devices"] == "2"
    at.sidebar.selectbox(key="filter_type").select("vibration_sensor").run()
    assert _metrics(at)["Devices"] == "2"
    assert _metrics(at)["Not synced"] == "0"


@pytest.mark.usefixtures("dashboard_env")
def test_telemetry_page_shows_a_metric_trend() -> None:
    """Telemetry: two vibration sensors at a steady 2.0 and 4.0 mm/s average 3.00; one line
    per device keeps them apart; the Flux reads the telemetry measurement of the type."""
    at = _open("telemetry")
    metrics = _metrics(at)
    assert metrics["Mean over the period"] == "3.00"
    assert metrics["Devices of the type"] == "2"
    assert at.selectbox(key="tel_metric").value == "vibration (mm/s)"
    flux = at.text_area[0].value
    assert flux is not None
    assert 'measurement: "telemetry"' in flux
    assert 'device_type: "vibration_sensor"' in flux
    at.selectbox(key="tel_series").select("One line per device").run()
    trend = at.dataframe[0].value
    by_device = {h: round(v, 2) for h, v in zip(trend["hostname"], trend["value"], strict=True)}
    assert set(by_device) == {"VIB-T001", "VIB-T002"}
    assert by_device["VIB-T001"] == 2.0
    assert by_device["VIB-T002"] == 4.0


@pytest.mark.usefixtures("dashboard_env")
def test_sidebar_filters_narrow_every_report() -> None:
    """Picking zone 5 in the sidebar leaves its one device, on this page and the next."""
    at = _open()
    at.sidebar.selectbox(key="filter_zone").select("5").run()
    assert not at.exception
    assert _metrics(at)["Devices"] == "1"
    at.switch_page("app_pages/commands.py").run()
    assert _metrics(at)["Commands"] == "1"


@pytest.mark.usefixtures("dashboard_env")
def test_alarms_page_shows_raised_and_active() -> None:
    """Alarms counts the period's input alarms and every open one, however old."""
    at = _open("alarms")
    metrics = _metrics(at)
    assert metrics["Alarms raised"] == "2"
    assert metrics["Active now"] == "2"
    assert metrics["Critical active"] == "1"
    assert metrics["Acknowledge, median"] == "5.0 s"
    assert metrics["Resolve, median"] == "20.0 s"
    assert len(at.dataframe[0].value) == 2  # the active alarms


@pytest.mark.usefixtures("dashboard_env")
def test_commands_page_shows_success_rate() -> None:
    """Commands: one completed of the two with an outcome is a 50 % success rate."""
    at = _open("commands")
    metrics = _metrics(at)
    assert metrics["Commands"] == "3"
    assert metrics["Success rate"] == "50.0%"
    assert metrics["Failed or timed out"] == "1"
    by_type = at.dataframe[0].value
    assert list(by_type["command_type"]) == ["SYSTEM"]


@pytest.mark.usefixtures("dashboard_env")
def test_storage_page_shows_cdc_savings() -> None:
    """Storage: 50 points written for 720 heartbeats is a 93.1 % reduction."""
    at = _open("storage")
    metrics = _metrics(at)
    assert metrics["Heartbeats received"] == "720"
    assert metrics["Points written"] == "50"
    assert metrics["Reduction"] == "93.1%"
    per_kind = at.dataframe[1].value  # tabs: per day, per kind, per device, points
    assert list(zip(per_kind["kind"], per_kind["received"], strict=True)) == [("panel", 720)]
    points = at.dataframe[3].value
    assert points["points"].sum() == 50


@pytest.mark.usefixtures("dashboard_env")
def test_trends_page_shows_the_time_weighted_series() -> None:
    """Trends: two devices at a steady 20 and 24 °C average 22 °C; one device alone, 20."""
    at = _open("trends")
    metrics = _metrics(at)
    assert metrics["Mean over the period"] == "22.00"
    assert metrics["Source"] == "Raw points"
    assert at.selectbox(key="trend_window").value == "15 minutes"  # 96 points a day
    flux = at.text_area[0].value
    assert flux is not None
    assert 'field: "temperature"' in flux
    at.sidebar.multiselect(key="filter_devices").select("ESG_ALARM_0001")
    at.selectbox(key="trend_series").select("One line per device").run()
    assert not at.exception
    assert _metrics(at)["Mean over the period"] == "20.00"
    trend = at.dataframe[0].value
    assert set(trend["hostname"]) == {"ESG_ALARM_0001"}


@pytest.mark.usefixtures("dashboard_env")
def test_trends_over_a_month_read_the_zone_rollup_and_the_latest_raw_hours() -> None:
    """The whole fleet over 30 days reads the per-zone rollup (empty: the hourly task has not
    run) and, for the hours since its last run, the raw points: still 22 °C."""
    at = _open("trends")
    at.sidebar.selectbox(key="filter_period").select("Last 30 days").run()
    assert not at.exception, at.exception
    metrics = _metrics(at)
    assert metrics["Source"] == "Zone rollup"
    assert metrics["Mean over the period"] == "22.00"
    assert at.selectbox(key="trend_window").value == "6 hours"
    assert any("the hours since from the raw points" in c.value for c in at.caption)


@pytest.mark.usefixtures("dashboard_env")
def test_trends_page_runs_the_engineers_flux() -> None:
    """The edited Flux in the expander runs and its table is shown."""
    at = _open("trends")
    flux = at.text_area[0].value or ""
    assert 'field: "temperature"' in flux
    at.text_area[0].set_value(flux.replace('field: "temperature"', 'field: "humidity"')).run()
    at.button(key="run_trend_flux").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    result = at.dataframe[1].value
    assert len(result) > 0
    assert result["_value"].tolist() == pytest.approx([40.0] * len(result))  # humidity


@pytest.mark.usefixtures("dashboard_env")
def test_trends_page_runs_a_library_query() -> None:
    """A ready-made query runs with the sidebar's period and the dashboard's bucket."""
    at = _open("trends")
    at.selectbox(key="library_query").select("cdc_points_per_day").run()
    at.button(key="run_library_cdc_points_per_day").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    result = at.dataframe[-1].value
    assert result["points"].sum() == 50


@pytest.mark.usefixtures("dashboard_env")
def test_trends_page_draws_a_young_history_at_minute_windows(
    influx_settings: InfluxSettings,
) -> None:
    """A device whose points are only ten minutes old is drawn over those minutes, a point a
    minute, not as one point of the day's 15 minute windows."""
    now = datetime.now(UTC)
    with make_client(influx_settings) as client:
        write(
            client,
            influx_settings.influx_bucket,
            (
                heartbeat(tags(3, zone=5, country="PT"), now - (10 - k) * timedelta(minutes=1))
                for k in range(10)
            ),
        )
    at = _open("trends")
    assert at.selectbox(key="trend_window").value == "15 minutes"  # devices 1 and 2: 2 hours
    at.sidebar.multiselect(key="filter_devices").select("ESG_ALARM_0003").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="trend_window").value == "1 minute"
    metrics = _metrics(at)
    assert metrics["Source"] == "Raw points"
    assert metrics["Mean over the period"] == "21.00"
    assert any("stored history starts" in c.value for c in at.caption)
    assert len(at.dataframe[0].value) >= 9  # a window a minute


@pytest.mark.usefixtures("dashboard_env")
def test_trends_page_shows_the_first_rows_of_a_long_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """With FLEETWATCH_DASHBOARD_FLUX_MAX_ROWS=3 the chart's Flux shows three rows and says
    they are only the first."""
    monkeypatch.setenv("FLEETWATCH_DASHBOARD_FLUX_MAX_ROWS", "3")
    at = _open("trends")
    assert len(at.dataframe[0].value) > 3  # the chart's own windows
    at.button(key="run_trend_flux").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert any("showing the first 3 rows" in w.value for w in at.warning)
    assert len(at.dataframe[1].value) == 3


@pytest.mark.usefixtures("dashboard_env")
def test_trends_page_cancels_a_slow_flux(monkeypatch: pytest.MonkeyPatch) -> None:
    """An edited query computing for tens of seconds stops at FLEETWATCH_DASHBOARD_FLUX_TIMEOUT_S
    with an error saying what to do."""
    monkeypatch.setenv("FLEETWATCH_DASHBOARD_FLUX_TIMEOUT_S", "1")
    at = _open("trends")
    at.text_area[0].set_value(
        'import "generate"\n'
        "generate.from(count: 20000000, fn: (n) => n, start: 2021-01-01T00:00:00Z, "
        "stop: 2021-01-02T00:00:00Z)\n"
        '  |> map(fn: (r) => ({r with x: float(v: r._value) * 2.0})) |> sum(column: "x")'
    ).run()
    at.button(key="run_trend_flux").click().run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [
        "the query ran past 1 s; narrow its range or raise FLEETWATCH_DASHBOARD_FLUX_TIMEOUT_S"
    ]


def test_app_file_is_where_the_command_looks() -> None:
    """The CLI starts the app file that exists, next to its pages."""
    assert APP.is_file()
    assert {p.name for p in (APP.parent / "app_pages").glob("*.py")} >= {
        "fleet.py",
        "alarms.py",
        "commands.py",
        "trends.py",
        "storage.py",
    }
    assert isinstance(APP, Path)


@pytest.mark.usefixtures("dashboard_env")
def test_events_page_lists_what_needs_attention_and_acknowledges() -> None:
    """Events: the acknowledged TAMPER event, the offline event and the old PANIC2 alarm,
    critical first; acknowledging the alarm records who, and the list says so."""
    at = _open("events")
    metrics = _metrics(at)
    assert (metrics["Open critical"], metrics["Open warning"]) == ("2", "1")
    todo = at.dataframe[0].value
    assert list(todo["origin"]) == ["alarm", "rule", "rule"]  # PANIC2 is the oldest critical
    assert list(todo["severity"]) == ["critical", "critical", "warning"]
    item = at.selectbox(key="events_item")
    item.set_value(next(label for label in item.options if label.startswith("alarm")))
    at.text_input(key="events_note").input("patrol sent")
    at.button(key="FormSubmitter:events_attention-Acknowledge").click().run()
    assert not at.exception, at.exception
    todo = at.dataframe[0].value
    assert todo[todo["origin"] == "alarm"]["status"].tolist() == ["acknowledged"]


@pytest.mark.usefixtures("dashboard_env")
def test_rules_page_refuses_a_rule_that_cannot_work_and_saves_one_that_can() -> None:
    """Rules: a flag compared with gt is refused with the reason; a zone rule is saved and
    listed with the name of who saved it."""
    at = _open("rules")
    assert len(at.dataframe[0].value) == 14  # the built-in rules
    form = {"Name": "zone 3 hot"}
    at.text_input[0].input(form["Name"])
    at.selectbox[1].set_value("panel.siren")
    at.selectbox[2].set_value("gt")
    at.text_input[1].input("1")
    at.button[0].click().run()
    assert any("siren is a flag" in e.value for e in at.error)
    at.selectbox[1].set_value("panel.temperature")
    at.text_input[1].input("30")
    at.selectbox[3].set_value("zone")
    at.text_input[4].input("3")
    at.button[0].click().run()
    assert not at.error, [e.value for e in at.error]
    assert any("Saved: zone 3 hot" in s.value for s in at.success)
    listed = at.dataframe[0].value
    assert "zone 3 hot" in list(listed["name"])
    saved = listed[listed["name"] == "zone 3 hot"]
    assert saved["changed by"].tolist() == ["ada"]  # the person signed in, not a typed name
