"""Fleet statistics on hand-built device frames."""

from __future__ import annotations

from datetime import timedelta

import pytest

from analytics.fleet import (
    device_health,
    fleet_breakdown,
    fleet_summary,
    stale_devices,
    unsynced_devices,
)
from analytics.selection import AnalyticsError
from tests.analytics.builders import T0, device_frame

FLEET = device_frame(
    {"device_id": 1, "hostname": "A", "min_heap": 80_000, "boot_count": 3},
    {
        "device_id": 2,
        "hostname": "B",
        "zone": 5,
        "country": "PT",
        "firmware_version": "2.0.0",
        "is_online": False,
        "device_state": "OFFLINE",
        "last_seen": T0 - timedelta(hours=3),
        "device_synced": False,
        "sync_attempts": 2,
        "min_heap": 40_000,
        "rssi": -85,
        "error_flags": 0b101,
        "boot_count": 7,
        "disconnects": 2,
    },
    {
        "device_id": 3,
        "hostname": "C",
        "is_online": False,
        "device_state": "UNKNOWN",
        "last_seen": None,
        "device_synced": False,
        "min_heap": None,
        "rssi": None,
        "boot_count": 0,
    },
    {"device_id": 4, "hostname": "D", "rssi": -80, "last_seen": T0 - timedelta(minutes=59)},
)


def test_summary_counts_the_fleet() -> None:
    """Totals, online share, unsynced, stale, weak signal, errors, heap, reboots, disconnects."""
    row = fleet_summary(FLEET, now=T0).row(0, named=True)
    assert row == {
        "devices": 4,
        "online": 2,
        "offline": 2,
        "online_share": 0.5,
        "not_synced": 2,
        "stale": 2,  # B silent for 3 h, C never seen; D at 59 min is not stale yet
        "weak_rssi": 1,  # -85; -80 is not below the limit
        "with_errors": 1,
        "min_free_heap": 40_000,
        "reboots": 11,
        "disconnects": 2,
    }


def test_summary_of_no_devices_is_one_row_of_zeros() -> None:
    """An empty fleet still gives one row, with no online share."""
    row = fleet_summary(FLEET.clear(), now=T0).row(0, named=True)
    assert (row["devices"], row["online"], row["online_share"], row["min_free_heap"]) == (
        0,
        0,
        None,
        None,
    )


def test_breakdown_by_zone_and_firmware() -> None:
    """Each value gets its devices, online/offline and share, most devices first."""
    zones = fleet_breakdown(FLEET, "zone").to_dicts()
    assert zones == [
        {"zone": 3, "devices": 3, "online": 2, "offline": 1, "share": 0.75},
        {"zone": 5, "devices": 1, "online": 0, "offline": 1, "share": 0.25},
    ]
    firmware = fleet_breakdown(FLEET, "firmware_version")
    assert firmware.select("firmware_version", "devices").rows() == [("2.1.0", 3), ("2.0.0", 1)]
    states = dict(fleet_breakdown(FLEET, "device_state").select("device_state", "devices").rows())
    assert states == {"NORMAL": 2, "OFFLINE": 1, "UNKNOWN": 1}
    countries = dict(fleet_breakdown(FLEET, "country").select("country", "devices").rows())
    assert countries == {"ES": 3, "PT": 1}


def test_breakdown_refuses_an_unknown_dimension() -> None:
    """Asking for a column that is not a dimension is an error, not an empty report."""
    with pytest.raises(AnalyticsError, match="cannot break the fleet down"):
        fleet_breakdown(FLEET, "rssi")  # type: ignore[arg-type]


def test_unsynced_devices_most_attempts_first() -> None:
    """Devices without a confirmed id, the one retried most first."""
    assert unsynced_devices(FLEET).select("hostname", "sync_attempts").rows() == [
        ("B", 2),
        ("C", 0),
    ]


def test_health_ranks_devices_by_problems() -> None:
    """B has weak signal, error flags and disconnections; the rest follow by lowest heap."""
    health = device_health(FLEET)
    assert health.select("hostname", "problems").rows() == [
        ("B", 3),
        ("A", 0),
        ("D", 0),
        ("C", 0),
    ]
    b = health.row(0, named=True)
    assert (b["weak_rssi"], b["error_bits"], b["boot_count"], b["disconnects"]) == (True, 2, 7, 2)
    assert device_health(FLEET, weak_rssi_dbm=-79).filter(weak_rssi=True).height == 2


def test_stale_devices_never_seen_first() -> None:
    """Devices silent longer than the limit, with how long; never-seen ones first."""
    stale = stale_devices(FLEET, now=T0)
    assert stale.select("hostname", "silent_seconds").rows() == [("C", None), ("B", 10_800.0)]
    assert stale_devices(FLEET, now=T0, older_than=timedelta(minutes=30)).height == 3
