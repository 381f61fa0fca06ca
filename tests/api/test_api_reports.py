"""Reads over the HTTP API against the real stores: seed 003's state history (PostgreSQL), a
device's time-weighted trend (InfluxDB, as the dashboard computes it) and the storage the
CDC saved (PostgreSQL); every person may read them, nobody without a token."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg.types.json import Jsonb

from analytics.storage import heartbeat_point_bytes
from fleetwatch.settings import InfluxSettings
from stores.influx import ensure_bucket
from stores.influx.points import MetricPoint, metric_line
from tests.api.conftest import Api
from tests.api.helpers import add_boards
from tests.conftest import unique_name
from tests.support.history import heartbeat, tags, write
from tests.support.influx_env import InfluxEnv, own_influx_env

HOUR = timedelta(hours=1)
# Well in the past, so that no point is written after it while a test reads.
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 3 * HOUR


@pytest.fixture
def boards(api: Api) -> dict[str, int]:
    """Two ESP32 boards beside the conftest's panels."""
    return add_boards(api.db, {"esp-1": ("ESP32", True), "esp-2": ("ESP32", True)})


@pytest.fixture
def influx(influx_service: InfluxSettings, monkeypatch: pytest.MonkeyPatch) -> Iterator[InfluxEnv]:
    """FLEETWATCH_INFLUX_* naming a raw bucket of the test's own, for the API to read."""
    with own_influx_env(influx_service, monkeypatch, unique_name("api")) as env:
        ensure_bucket(env.client, env.raw_bucket, env.org, 30)
        yield env


@pytest.mark.parametrize(
    "path",
    ["/state-history/esp-1", "/rules", "/rules/Device offline", "/silences", "/storage-savings",
     "/command-logs"],
)  # fmt: skip
@pytest.mark.usefixtures("boards")
def test_a_viewer_reads_and_nobody_without_a_token(api: Api, path: str) -> None:
    """Reads are everyone's; without a token, 401 with the error body."""
    with api.client("vic") as viewer, api.client(None) as anonymous:
        read = viewer.get(path)
        refused = anonymous.get(path)
    assert read.status_code == 200, read.text
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"


def test_state_history_is_newest_first_and_paged(api: Api, boards: dict[str, int]) -> None:
    """The snapshots a board sent, newest first, named by hostname; a page of them; none for
    a board that sent none; 404 for a device nobody knows."""
    for n in range(3):
        api.db.execute(
            "INSERT INTO device_state_snapshots (device_id, device_type, state_data, timestamp) "
            "VALUES (%s, 'ESP32', %s, %s)",
            [boards["esp-1"], Jsonb({"temperature": 20 + n, "relay": n % 2 == 0}),
             T0 + n * timedelta(seconds=1)],
        )  # fmt: skip
    with api.client("vic") as viewer:
        newest = viewer.get("/state-history/esp-1", params={"limit": 2}).json()
        oldest = viewer.get("/state-history/esp-1", params={"limit": 2, "offset": 2}).json()
        quiet = viewer.get("/state-history/esp-2").json()
        unknown = viewer.get("/state-history/NOPE")
    assert [s["state_data"]["temperature"] for s in newest] == [22, 21]
    assert {(s["device_id"], s["device_type"]) for s in newest} == {("esp-1", "ESP32")}
    assert [s["state_data"] for s in oldest] == [{"temperature": 20, "relay": True}]
    assert quiet == []
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"


def _reading(device_id: int, serial: str, when: datetime, temperature: float) -> str:
    """A telemetry point of an ESP32 board as the CDC writes it."""
    return metric_line(
        MetricPoint(
            measurement="telemetry",
            tags={"device_id": str(device_id), "hostname": serial, "device_type": "ESP32"},
            time=when,
            values={"temperature": temperature},
            is_online=True,
            change_type="SENSOR_DATA",
            changes={},
            device_time=None,
        )
    )


def test_trends_are_time_weighted_for_boards_and_panels(
    api: Api, boards: dict[str, int], influx: InfluxEnv
) -> None:
    """A board's metric held at 10 for half an hour then 20: windows of 30 minutes say 10
    and 20, an hour 15 (time-weighted, whatever the points); a panel's field the same way."""
    write(influx.client, influx.raw_bucket, [
        _reading(boards["esp-1"], "esp-1", T0, 10.0),
        _reading(boards["esp-1"], "esp-1", T0 + HOUR / 2, 20.0),
        _reading(boards["esp-1"], "esp-1", T0 + HOUR / 2 + timedelta(minutes=1), 20.0),
        heartbeat(tags(1), T0, temperature=21.0),
        heartbeat(tags(1), T0 + HOUR / 4, temperature=25.0),
    ])  # fmt: skip
    span = {"metric": "temperature", "start": T0.isoformat(), "stop": (T0 + HOUR).isoformat()}
    with api.client("vic") as viewer:
        halves = viewer.get("/trends/esp-1", params=span | {"every": "PT30M"})
        hour = viewer.get("/trends/esp-1", params=span | {"every": "PT1H"}).json()
        panel = viewer.get("/trends/ESG_ALARM_0001", params=span).json()
    assert halves.status_code == 200, halves.text
    body = halves.json()
    assert (body["source"], body["every"]) == ("raw", "PT30M")
    assert [(p["value"], p["covered_seconds"]) for p in body["points"]] == [
        (10.0, 1800.0), (20.0, 1800.0)
    ]  # fmt: skip
    assert [p["value"] for p in hour["points"]] == [15.0]
    assert [p["value"] for p in panel["points"]] == [24.0]  # 21 for 15 min, 25 for 45


@pytest.mark.usefixtures("boards", "influx")
def test_trends_that_cannot_be_are_refused(api: Api) -> None:
    """An unknown device is 404; a metric the device does not declare, a window under a
    second or one giving more than 1000 points, or a moment without an offset 422."""
    day = {"metric": "temperature"}
    cases = [
        ("/trends/NOPE", day, 404, "no active device"),
        ("/trends/esp-1", {"metric": "pressure"}, 422, "ESP32 declares temperature"),
        ("/trends/ESG_ALARM_0001", {"metric": "siren"}, 422, "a panel's trends are of"),
        ("/trends/esp-1", day | {"every": "PT0.5S"}, 422, "at least 1 s"),
        ("/trends/esp-1", day | {"every": "PT1M"}, 422, "at most 1000"),
        ("/trends/esp-1", day | {"start": "2026-01-01T00:00:00"}, 422, "timezone"),
        ("/trends/esp-1", day | {"start": "1900-01-01T00:00:00Z"}, 422, "times lie between"),
    ]
    with api.client("ana") as operator:
        for path, params, status, message in cases:
            answer = operator.get(path, params=params)
            assert answer.status_code == status, (params, answer.text)
            assert message in answer.json()["error"]["message"], (params, answer.text)


@pytest.mark.usefixtures("boards", "influx")
def test_an_influxdb_without_the_bucket_is_the_servers_fault(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A configured bucket that does not exist: 502 with the error body, not a traceback."""
    monkeypatch.setenv("FLEETWATCH_INFLUX_BUCKET", unique_name("missing"))
    with api.client("vic") as viewer:
        answer = viewer.get("/trends/esp-1", params={"metric": "temperature"})
    assert answer.status_code == 502
    assert answer.json()["error"]["code"] == "bad_gateway"


def _counts(api: Api, rows: list[tuple[str, datetime, int, int]]) -> None:
    for hostname, hour, received, written in rows:
        api.db.execute(
            "INSERT INTO heartbeat_counts (device_id, hour, received, written) "
            "SELECT id, %s, %s, %s FROM devices WHERE hostname = %s",
            [hour, received, written, hostname],
        )


def test_storage_savings_in_total_and_by_day_kind_and_device(api: Api) -> None:
    """Heartbeats received against points written over the last day: the total, a page of
    it by device, by kind and by day, and the total of one zone; a zone no integer holds
    is 422."""
    _counts(api, [
        ("ESG_ALARM_0001", T0, 720, 60), ("ESG_ALARM_0001", T0 + HOUR, 720, 60),
        ("ESG_ALARM_0003", T0, 720, 120),
        ("ESG_ALARM_0003", T0 - 2 * timedelta(days=1), 999, 1),  # before the period
    ])  # fmt: skip
    with api.client("vic") as viewer:
        total = viewer.get("/storage-savings").json()
        second = viewer.get("/storage-savings", params={"by": "device", "limit": 1,
                                                        "offset": 1}).json()  # fmt: skip
        kinds = viewer.get("/storage-savings", params={"by": "kind"}).json()
        days = viewer.get("/storage-savings", params={"by": "day"}).json()
        zone = viewer.get("/storage-savings", params={"zone": 5}).json()
        empty = viewer.get("/storage-savings", params={"country": "NO"}).json()
        too_big = viewer.get("/storage-savings", params={"zone": 2**40})
    overall: dict[str, Any] = total["total"]
    assert (overall["received"], overall["written"], overall["saved"]) == (2160, 240, 1920)
    assert overall["reduction"] == pytest.approx(1920 / 2160)
    assert overall["received_bytes"] == round(2160 * heartbeat_point_bytes())
    assert (total["by"], total["items"]) == (None, [])
    assert [(r["hostname"], r["zone"], r["received"]) for r in second["items"]] == [
        ("ESG_ALARM_0003", 5, 720)
    ]
    assert [(r["kind"], r["written"]) for r in kinds["items"]] == [("panel", 240)]
    assert sum(r["received"] for r in days["items"]) == 2160
    assert (zone["total"]["received"], zone["total"]["written"]) == (720, 120)
    assert (empty["total"]["received"], empty["total"]["reduction"]) == (0, None)
    assert too_big.status_code == 422  # what PostgreSQL cannot compare is the caller's
    assert "out of range" in too_big.json()["error"]["message"]
