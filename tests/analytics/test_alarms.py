"""Alarm reports on hand-built event frames."""

from __future__ import annotations

from datetime import timedelta

import pytest

from analytics.alarms import (
    active_alarms,
    alarm_counts,
    daily_alarms,
    noisy_devices,
    output_activity,
    response_times,
)
from analytics.selection import AnalyticsError
from tests.analytics.builders import T0, event_frame

S = timedelta(seconds=1)
DEVICE_2 = {"device_id": 2, "hostname": "B", "zone": 5, "country": "PT"}

EVENTS = event_frame(
    # device 1: three panics resolved after 10, 20 and 60 s, acknowledged after 5 and 15 s
    {"timestamp": T0, "resolved_at": T0 + 10 * S, "acknowledged_at": T0 + 5 * S},
    {"timestamp": T0 + 1000 * S, "resolved_at": T0 + 1020 * S, "acknowledged_at": T0 + 1015 * S},
    {"timestamp": T0 + 2000 * S, "resolved_at": T0 + 2060 * S},
    # device 1: a tamper still open since the next day
    {"alarm_type": "TAMPER", "priority": "HIGH", "timestamp": T0 + timedelta(days=1)},
    # device 2: a test (recorded resolved at once), a siren that ran 25 s, a turret running
    {**DEVICE_2, "event_state": "TEST", "timestamp": T0, "resolved_at": T0},
    {
        **DEVICE_2,
        "alarm_type": "OUTPUT_EVENT",
        "priority": "MEDIUM",
        "event_state": "INACTIVE",
        "output_type": 1,
        "elapsed_seconds": 25,
        "timestamp": T0,
        "resolved_at": T0 + 30 * S,
    },
    {
        **DEVICE_2,
        "alarm_type": "OUTPUT_EVENT",
        "priority": "MEDIUM",
        "event_state": "INACTIVE",
        "output_type": 1,
        "elapsed_seconds": 0,  # the device did not say: raised to resolved counts
        "timestamp": T0 + 100 * S,
        "resolved_at": T0 + 140 * S,
    },
    {
        **DEVICE_2,
        "alarm_type": "OUTPUT_EVENT",
        "priority": "MEDIUM",
        "event_state": "STARTING",
        "output_type": 2,
        "timestamp": T0 + timedelta(hours=30),
    },
)


def test_counts_by_type_priority_zone_and_device() -> None:
    """Every event counts once under its group, with how many are still active."""
    by_type = alarm_counts(EVENTS, "alarm_type").select("alarm_type", "events", "active").rows()
    assert by_type == [("PANIC1", 4, 0), ("OUTPUT_EVENT", 3, 1), ("TAMPER", 1, 1)]
    by_priority = dict(alarm_counts(EVENTS, "priority").select("priority", "events").rows())
    assert by_priority == {"CRITICAL": 4, "MEDIUM": 3, "HIGH": 1}
    assert alarm_counts(EVENTS, "zone").select("zone", "events").rows() == [(3, 4), (5, 4)]
    by_device = alarm_counts(EVENTS, "device")
    assert by_device.columns[:4] == ["device_id", "hostname", "zone", "country"]
    assert by_device.select("hostname", "events", "first").rows() == [
        ("ESG_ALARM_0001", 4, T0),
        ("B", 4, T0),
    ]


def test_daily_series_has_every_day() -> None:
    """Every day the period touches is there, 0 when quiet; events outside it are left out."""
    day = T0.replace(hour=0)
    daily = daily_alarms(EVENTS, start=day - timedelta(days=1), end=day + timedelta(days=3))
    assert daily.rows() == [
        (day - timedelta(days=1), 0),
        (day, 6),
        (day + timedelta(days=1), 2),
        (day + timedelta(days=2), 0),
    ]
    noon_to_noon = daily_alarms(EVENTS, start=T0, end=T0 + timedelta(days=1))
    assert noon_to_noon.rows() == [(day, 6), (day + timedelta(days=1), 0)]
    narrow = daily_alarms(EVENTS, start=T0 + timedelta(days=1), end=T0 + timedelta(days=2))
    assert narrow.rows() == [(day + timedelta(days=1), 2), (day + timedelta(days=2), 0)]


def test_daily_series_per_priority_fills_each_group() -> None:
    """Per group, every day appears for every group seen."""
    day = T0.replace(hour=0)
    daily = daily_alarms(EVENTS, start=day, end=day + timedelta(days=2), by="priority")
    assert daily.filter(priority="HIGH").select("events").to_series().to_list() == [0, 1]
    assert daily.height == 2 * 3  # two days, three priorities seen


def test_active_alarms_most_urgent_then_oldest() -> None:
    """Unresolved events with their age at 'now', HIGH before MEDIUM."""
    now = T0 + timedelta(days=2)
    active = active_alarms(EVENTS, now=now)
    assert active.select("alarm_type", "output", "age_seconds").rows() == [
        ("TAMPER", None, 86_400.0),
        ("OUTPUT_EVENT", "TURRET", 64_800.0),
    ]


def test_response_times_median_and_p90() -> None:
    """Input alarms only: resolve 10/20/60 s, acknowledge 5/15 s, tests and outputs left out."""
    row = response_times(EVENTS).row(0, named=True)
    assert row == {
        "alarms": 4,  # three panics and the open tamper
        "resolved": 3,
        "acknowledged": 2,
        "resolve_p50_s": 20.0,
        "resolve_p90_s": pytest.approx(52.0),  # 20 + 0.8 * (60 - 20)
        "ack_p50_s": 10.0,
        "ack_p90_s": pytest.approx(14.0),
    }
    per_type = response_times(EVENTS, "alarm_type").select("alarm_type", "resolve_p50_s").rows()
    assert per_type == [("PANIC1", 20.0), ("TAMPER", None)]


def test_noisy_devices_rank_input_alarms() -> None:
    """Device 1 raised 4 alarms; device 2 only a test and outputs, so it is not noisy."""
    noisy = noisy_devices(EVENTS)
    assert noisy.select("device_id", "alarms", "critical", "types").rows() == [(1, 4, 3, 2)]
    with pytest.raises(AnalyticsError):
        noisy_devices(EVENTS, top=0)


def test_output_activations_and_durations() -> None:
    """Siren: 2 runs of 25 s (reported) and 40 s (raised to resolved); turret still running."""
    outputs = output_activity(EVENTS)
    assert outputs.rows(named=True) == [
        {
            "output": "SIREN",
            "activations": 2,
            "running": 0,
            "total_seconds": 65.0,
            "mean_seconds": 32.5,
            "max_seconds": 40.0,
        },
        {
            "output": "TURRET",
            "activations": 1,
            "running": 1,
            "total_seconds": 0.0,
            "mean_seconds": None,
            "max_seconds": None,
        },
    ]
    per_device = output_activity(EVENTS, "device")
    assert per_device.select("hostname", "output", "activations").rows() == [
        ("B", "SIREN", 2),
        ("B", "TURRET", 1),
    ]


def test_reports_refuse_a_frame_without_the_schema() -> None:
    """A frame missing columns is an error naming them."""
    with pytest.raises(AnalyticsError, match="lacks columns"):
        alarm_counts(EVENTS.drop("priority"), "priority")
