"""Robot reports (seed 004): the robots' condition now and their jobs.

A *robots frame* (:data:`ROBOTS_SCHEMA`) has one row per robot: seed 004's robot columns, its
connection, its battery and hottest servo as last stored (the CDC keeps the stored values
within their dead bands of what the robot reports), and its thresholds. A *jobs frame*
(:data:`JOBS_SCHEMA`) has one row per job.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from analytics._frames import UTC_TIME, count_where, quantile, require_columns, seconds_between

__all__ = ["JOBS_SCHEMA", "ROBOTS_SCHEMA", "job_summary", "robot_condition", "robot_summary"]

ROBOTS_SCHEMA: Final = pl.Schema(
    {
        "device_id": pl.Int64(),
        "robot_id": pl.String(),
        "name": pl.String(),
        "status": pl.String(),
        "is_online": pl.Boolean(),
        "last_seen": UTC_TIME,
        "battery_percentage": pl.Float64(),
        "battery_voltage": pl.Float64(),
        "charging": pl.Boolean(),
        "hottest_servo_c": pl.Float64(),
        "servos": pl.Int64(),
        "battery_threshold_low": pl.Float64(),
        "battery_threshold_critical": pl.Float64(),
        "temp_threshold_warning": pl.Float64(),
        "temp_threshold_critical": pl.Float64(),
    }
)

JOBS_SCHEMA: Final = pl.Schema(
    {
        "job_id": pl.Int64(),
        "robot_id": pl.String(),
        "job_key": pl.String(),
        "start_time": UTC_TIME,
        "end_time": UTC_TIME,
        "items_total": pl.Int64(),
        "items_done": pl.Int64(),
        "percent_complete": pl.Float64(),
        "status": pl.String(),
        "last_report_at": UTC_TIME,
        "failure_reason": pl.String(),
    }
)


def robot_condition(robots: pl.DataFrame) -> pl.DataFrame:
    """Each robot with ``battery`` (ok, low, critical, unknown) and ``servos_heat`` (ok,
    warning, critical, unknown) judged by its own thresholds; lowest battery first."""
    require_columns(robots, ROBOTS_SCHEMA, "robots")
    battery, heat = pl.col("battery_percentage"), pl.col("hottest_servo_c")
    return robots.with_columns(
        battery=pl.when(battery.is_null())
        .then(pl.lit("unknown"))
        .when(battery <= pl.col("battery_threshold_critical"))
        .then(pl.lit("critical"))
        .when(battery <= pl.col("battery_threshold_low"))
        .then(pl.lit("low"))
        .otherwise(pl.lit("ok")),
        servos_heat=pl.when(heat.is_null())
        .then(pl.lit("unknown"))
        .when(heat >= pl.col("temp_threshold_critical"))
        .then(pl.lit("critical"))
        .when(heat >= pl.col("temp_threshold_warning"))
        .then(pl.lit("warning"))
        .otherwise(pl.lit("ok")),
    ).sort("battery_percentage", nulls_last=True)


def robot_summary(robots: pl.DataFrame) -> pl.DataFrame:
    """How many robots, online, charging, with a low (or critical) battery, with a servo at
    or past its warning temperature. One row."""
    judged = robot_condition(robots)
    return judged.select(
        robots=pl.len().cast(pl.Int64),
        online=count_where(pl.col("is_online")),
        charging=count_where(pl.col("charging").fill_null(value=False)),
        battery_low=count_where(pl.col("battery").is_in(["low", "critical"])),
        servos_hot=count_where(pl.col("servos_heat").is_in(["warning", "critical"])),
    )


def job_summary(jobs: pl.DataFrame) -> pl.DataFrame:
    """The jobs' outcome: ``active``, ``completed``, ``failed``, ``success_rate`` (completed
    among finished, null for none) and the median ``duration_s`` of completed jobs. One row."""
    require_columns(jobs, JOBS_SCHEMA, "jobs")
    completed, failed = pl.col("status") == "completed", pl.col("status") == "failed"
    done = jobs.filter(completed).select(seconds_between("start_time", "end_time").alias("d"))
    finished = count_where(completed | failed)
    summary = jobs.select(
        active=count_where(pl.col("status") == "active"),
        completed=count_where(completed),
        failed=count_where(failed),
        success_rate=pl.when(finished > 0).then(count_where(completed) / finished),
    )
    return summary.with_columns(
        duration_s=pl.lit(done.select(quantile("d", 0.5)).item() if done.height else None)
    )
