"""CDC storage savings on hand-built heartbeat count frames."""

from __future__ import annotations

from datetime import timedelta

import pytest

from analytics.selection import AnalyticsError
from analytics.storage import cdc_savings, heartbeat_point_bytes
from stores.influx.points import DeviceTags, HeartbeatPoint, heartbeat_line
from tests.analytics.builders import T0, count_frame

H = timedelta(hours=1)
COUNTS = count_frame(
    {"hour": T0, "received": 720, "written": 30},
    {"hour": T0 + H, "received": 720, "written": 42},
    {"hour": T0 + 24 * H, "received": 360, "written": 8},
    {"device_id": 2, "hostname": "B", "hour": T0, "received": 200, "written": 200},
)


def test_overall_savings_in_points_and_bytes() -> None:
    """Received against written, the reduction, and bytes at the given point size."""
    row = cdc_savings(COUNTS, bytes_per_point=100).row(0, named=True)
    assert row == {
        "received": 2000,
        "written": 280,
        "saved": 1720,
        "reduction": pytest.approx(0.86),
        "received_bytes": 200_000,
        "written_bytes": 28_000,
        "saved_bytes": 172_000,
    }


def test_savings_per_device_and_day() -> None:
    """Per device, and per UTC day of the counted hours."""
    per_device = cdc_savings(COUNTS, "device", bytes_per_point=100)
    assert per_device.select("hostname", "received", "written", "reduction").rows() == [
        ("ESG_ALARM_0001", 1800, 80, pytest.approx(1720 / 1800)),
        ("B", 200, 200, 0.0),
    ]
    per_day = cdc_savings(COUNTS, "day", bytes_per_point=100)
    day = T0.replace(hour=0)
    assert per_day.select("day", "received", "written").rows() == [
        (day, 1640, 272),
        (day + timedelta(days=1), 360, 8),
    ]


def test_nothing_received_has_no_reduction() -> None:
    """No counts: zeros and a null reduction rather than a division by zero."""
    row = cdc_savings(COUNTS.clear()).row(0, named=True)
    assert (row["received"], row["saved_bytes"], row["reduction"]) == (0, 0, None)


def test_point_size_is_measured_from_line_protocol() -> None:
    """The default size is a real heartbeat line's length, and it is used by default."""
    size = heartbeat_point_bytes()
    line = heartbeat_line(
        HeartbeatPoint(
            tags=DeviceTags(1, "ESG_ALARM_0001", 3, "ES"),
            time=T0,
            temperature=21.5,
            humidity=40.0,
            fan_pwm_duty=30,
            panic1=False,
            panic2=False,
            box_sw=False,
            siren=False,
            turret=False,
            is_online=True,
            device_state="NORMAL",
            uptime=60,
            change_type="PERIODIC",
            changes={"periodic": True},
            device_time=T0,
        )
    )
    assert 250 < size < 450
    assert abs(size - len(line.encode())) < 60
    default = cdc_savings(COUNTS).row(0, named=True)
    assert default["saved_bytes"] == round(1720 * size)
    with pytest.raises(AnalyticsError):
        cdc_savings(COUNTS, bytes_per_point=0)


def test_savings_per_kind() -> None:
    """Readings of telemetry devices and heartbeats of panels are summed per kind."""
    counts = count_frame(
        {"device_id": 1, "received": 360, "written": 12},
        {"device_id": 2, "hostname": "ESG_ALARM_0002", "received": 360, "written": 24},
        {
            "device_id": 3,
            "hostname": "VIB-000001",
            "kind": "telemetry",
            "received": 100,
            "written": 50,
        },
    )
    per_kind = cdc_savings(counts, "kind", bytes_per_point=100.0)
    assert per_kind.select("kind", "received", "written", "saved").rows() == [
        ("panel", 720, 36, 684),
        ("telemetry", 100, 50, 50),
    ]
    assert per_kind["reduction"].to_list() == [pytest.approx(0.95), pytest.approx(0.5)]
