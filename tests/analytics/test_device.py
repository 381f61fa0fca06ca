"""One device's reports and the fleet map's points, on hand-built frames."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from analytics.device import device_alarms, history_series, status_fields
from analytics.positions import POSITIONS_SCHEMA, device_map, map_extent, map_summary
from tests.analytics.builders import T0, device_frame, event_frame

M = timedelta(minutes=1)


def test_history_series_names_a_robots_parts_and_reads_flags_as_numbers() -> None:
    """A robot's battery and two servos are separate series, named by part and instance;
    a flag is 1.0/0.0; texts and the device clock are not series."""
    points = pl.DataFrame(
        [
            {"_time": T0, "_measurement": "battery", "percentage": 80.0, "charging": True},
            {"_time": T0 + M, "_measurement": "battery", "percentage": 79.0, "charging": False},
            {"_time": T0, "_measurement": "servos", "servo_id": "servo_1", "temperature": 40.0},
            {"_time": T0, "_measurement": "servos", "servo_id": "servo_2", "temperature": 45.0},
        ]
    ).with_columns(change_type=pl.lit("PERIODIC"), device_time_ms=pl.lit(1, pl.Int64))
    series = history_series(points)
    assert sorted(set(series["series"])) == [
        "battery/charging",
        "battery/percentage",
        "servos/servo_1/temperature",
        "servos/servo_2/temperature",
    ]
    charging = series.filter(series="battery/charging")
    assert charging["value"].to_list() == [1.0, 0.0]


def test_history_series_of_one_history_is_named_by_field() -> None:
    """A panel's heartbeats (one history, no instance) give series named by field alone."""
    points = pl.DataFrame(
        {"_time": [T0, T0 + M], "hostname": ["A", "A"], "temperature": [20.0, 21.5]}
    )
    series = history_series(points)
    assert series.rows() == [(T0, "temperature", 20.0), (T0 + M, "temperature", 21.5)]
    assert history_series(pl.DataFrame()).is_empty()


def test_device_alarms_lists_an_old_open_alarm_once_with_the_periods() -> None:
    """An alarm both raised in the period and open appears once; an older open one is added;
    newest first."""
    recent = event_frame(
        {"alarm_type": "TAMPER", "timestamp": T0},
        {"alarm_type": "PANIC1", "timestamp": T0 - M, "resolved_at": T0},
    )
    still_open = event_frame(
        {"alarm_type": "TAMPER", "timestamp": T0},
        {"id": 9, "alarm_type": "PANIC2", "timestamp": T0 - timedelta(days=3)},
    )
    listed = device_alarms(recent, still_open)
    assert list(zip(listed["alarm_type"], listed["open"], strict=True)) == [
        ("TAMPER", True),
        ("PANIC1", False),
        ("PANIC2", True),
    ]


def test_status_fields_lists_what_has_a_value() -> None:
    """The status list leaves out empty fields and those asked to be left out."""
    fields = status_fields(
        pl.DataFrame({"hostname": ["A"], "rssi": [-60], "ip_address": [None]}),
        leave_out=["hostname"],
    )
    assert fields.rows() == [("rssi", "-60")]


def _positions(*rows: tuple[int, float | None, float | None]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"device_id": d, "latitude": lat, "longitude": lon} for d, lat, lon in rows],
        schema={**POSITIONS_SCHEMA},
    )


def test_device_map_puts_an_open_alarm_before_offline() -> None:
    """State: an open alarm wins over offline, offline over online; unplaced devices count."""
    devices = device_frame(
        {"device_id": 1, "hostname": "A"},
        {"device_id": 2, "hostname": "B", "is_online": False},
        {"device_id": 3, "hostname": "C", "is_online": False},
        {"device_id": 4, "hostname": "D"},
    )
    placed = _positions((1, 40.0, -3.0), (2, 41.0, 2.0), (3, 38.0, -9.0), (4, None, None))
    alarms = event_frame({"device_id": 3}, {"device_id": 3}, {"device_id": 1, "resolved_at": T0})
    mapped = device_map(devices, placed, alarms)
    assert dict(zip(mapped["hostname"], mapped["state"], strict=True)) == {
        "A": "online",
        "B": "offline",
        "C": "open alarm",
        "D": "online",
    }
    assert mapped.filter(hostname="C")["open_alarms"].item() == 2
    assert map_summary(mapped).row(0, named=True) == {
        "devices": 4,
        "on_map": 3,
        "no_position": 1,
        "online": 2,
        "offline": 2,
        "with_open_alarms": 1,
    }


def test_map_extent_widens_a_single_device_and_pads_a_spread() -> None:
    """One device still gets a readable area; a spread gets its margin; none gets None."""
    one = device_map(device_frame({}), _positions((1, 40.0, -3.0)), event_frame().clear())
    assert map_extent(one, min_span=1.0) == pytest.approx((-3.5, 39.5, -2.5, 40.5))
    two = device_map(
        device_frame({"device_id": 1}, {"device_id": 2, "hostname": "B"}),
        _positions((1, 40.0, -4.0), (2, 44.0, 4.0)),
        event_frame().clear(),
    )
    assert map_extent(two, margin=0.25) == pytest.approx((-6.0, 39.0, 6.0, 45.0))
    unplaced = device_map(device_frame({}), _positions((1, None, None)), event_frame().clear())
    assert map_extent(unplaced) is None
