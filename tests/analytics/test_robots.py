"""Robot reports: conditions judged by each robot's thresholds, and job outcomes."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from analytics.robots import JOBS_SCHEMA, ROBOTS_SCHEMA, job_summary, robot_condition, robot_summary
from tests.analytics.builders import T0

ROBOT = {
    "device_id": 1,
    "robot_id": "tonypi_01",
    "name": "TonyPi 01",
    "status": "online",
    "is_online": True,
    "last_seen": T0,
    "battery_percentage": 80.0,
    "battery_voltage": 12.2,
    "charging": False,
    "hottest_servo_c": 40.0,
    "servos": 6,
    "battery_threshold_low": 20.0,
    "battery_threshold_critical": 10.0,
    "temp_threshold_warning": 70.0,
    "temp_threshold_critical": 80.0,
}


def robots(*rows: dict[str, object]) -> pl.DataFrame:
    return pl.DataFrame([{**ROBOT, **row} for row in rows], schema=ROBOTS_SCHEMA)


def test_each_robot_is_judged_by_its_own_thresholds() -> None:
    """At or under a threshold counts (20 % is low); a robot with a lower limit is fine."""
    frame = robots(
        {"robot_id": "a", "battery_percentage": 20.0},
        {"robot_id": "b", "battery_percentage": 9.5, "hottest_servo_c": 80.0},
        {"robot_id": "c", "battery_percentage": 15.0, "battery_threshold_low": 12.0},
        {"robot_id": "d", "battery_percentage": None, "hottest_servo_c": 70.0},
    )
    judged = dict(
        zip(
            robot_condition(frame)["robot_id"],
            robot_condition(frame).select("battery", "servos_heat").rows(),
            strict=True,
        )
    )
    assert judged == {
        "a": ("low", "ok"),
        "b": ("critical", "critical"),
        "c": ("ok", "ok"),
        "d": ("unknown", "warning"),
    }
    summary = robot_summary(frame).row(0, named=True)
    assert (summary["battery_low"], summary["servos_hot"], summary["online"]) == (2, 2, 4)


def test_job_summary_counts_outcomes_and_median_duration() -> None:
    """Success is completed among finished jobs; the median is over completed ones."""
    rows = [
        ("completed", 10 * 60),
        ("completed", 30 * 60),
        ("completed", 20 * 60),
        ("failed", 5 * 60),
        ("active", None),
    ]
    jobs = pl.DataFrame(
        [
            {
                "job_id": n,
                "robot_id": "tonypi_01",
                "job_key": f"J-{n}",
                "start_time": T0,
                "end_time": None if seconds is None else T0 + timedelta(seconds=seconds),
                "items_total": 10,
                "items_done": 10,
                "percent_complete": 100.0,
                "status": status,
                "last_report_at": T0,
                "failure_reason": None,
            }
            for n, (status, seconds) in enumerate(rows)
        ],
        schema=JOBS_SCHEMA,
    )
    summary = job_summary(jobs).row(0, named=True)
    assert (summary["active"], summary["completed"], summary["failed"]) == (1, 3, 1)
    assert summary["success_rate"] == pytest.approx(0.75)
    assert summary["duration_s"] == pytest.approx(20 * 60)
    empty = job_summary(jobs.clear()).row(0, named=True)
    assert (empty["success_rate"], empty["duration_s"]) == (None, None)
