"""Helpers of the downsampling tests: hours, stored rows, task runs and heartbeat points."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.rest import ApiException

from stores.influx.points import DeviceTags, HeartbeatPoint, heartbeat_line

TASK_RUN_TIMEOUT_S = 30.0


def hour_ago(hours: int) -> datetime:
    """The start of the hour ``hours`` before the current one."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return now - timedelta(hours=hours)


def rows(client: InfluxDBClient, bucket: str, measurement: str) -> list[dict[str, Any]]:
    """Every ``measurement`` row of ``bucket``, its fields pivoted into columns."""
    flux = f"""
from(bucket: "{bucket}")
  |> range(start: -7d)
  |> filter(fn: (r) => r._measurement == "{measurement}")
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
"""
    return [record.values for table in client.query_api().query(flux) for record in table.records]


def run_status(client: InfluxDBClient, task_id: str, run_id: str) -> str:
    """The run's status; "unseen" while influxd has it in neither its running nor its
    finished runs (a finished run is found only once its record reaches the _tasks bucket)."""
    try:
        return str(client.tasks_api().get_run(task_id, run_id).status)
    except ApiException as exc:
        if exc.status == 404:
            return "unseen"
        raise


def finished_run(client: InfluxDBClient, task_id: str, run_id: str) -> str:
    """The status the run ends with; AssertionError when it has not within the timeout."""
    deadline = time.monotonic() + TASK_RUN_TIMEOUT_S
    while (status := run_status(client, task_id, run_id)) not in {"success", "failed", "canceled"}:
        assert time.monotonic() < deadline, f"task run still {status}"
        time.sleep(0.2)
    return status


def heartbeat(
    device_id: int,
    when: datetime,
    temperature: float,
    *,
    humidity: float = 50.0,
    panic1: bool = False,
    box_sw: bool = False,
    online: bool = True,
    change_type: str = "PERIODIC",
    zone: int | None = 3,
    country: str | None = "ES",
) -> str:
    """Line protocol of one CDC heartbeat point."""
    return heartbeat_line(
        HeartbeatPoint(
            tags=DeviceTags(device_id, f"ESG_ALARM_{device_id:04d}", zone, country),
            time=when,
            temperature=temperature,
            humidity=humidity,
            fan_pwm_duty=40,
            panic1=panic1,
            panic2=False,
            box_sw=box_sw,
            siren=False,
            turret=False,
            is_online=online,
            device_state="NORMAL",
            uptime=100,
            change_type=change_type,
            changes={},
            device_time=None,
        )
    )
