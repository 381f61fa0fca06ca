"""Builders of heartbeat and alarm points as ingest writes them, for InfluxDB tests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from influxdb_client.client.influxdb_client import InfluxDBClient

from stores.influx.points import (
    AlarmPoint,
    DeviceTags,
    HeartbeatPoint,
    alarm_line,
    heartbeat_line,
)
from stores.influx.writer import LineWriter


def tags(device_id: int, *, zone: int | None = 3, country: str | None = "ES") -> DeviceTags:
    """The tags of device ``device_id``, hostname ESG_ALARM_<id>."""
    return DeviceTags(device_id, f"ESG_ALARM_{device_id:04d}", zone, country)


def heartbeat(
    device: DeviceTags,
    when: datetime,
    *,
    temperature: float = 21.0,
    humidity: float = 40.0,
    fan_pwm_duty: int = 30,
    online: bool = True,
    siren: bool = False,
    change_type: str = "PERIODIC",
) -> str:
    """Line protocol of one heartbeat point."""
    return heartbeat_line(
        HeartbeatPoint(
            tags=device,
            time=when,
            temperature=temperature,
            humidity=humidity,
            fan_pwm_duty=fan_pwm_duty,
            panic1=False,
            panic2=False,
            box_sw=False,
            siren=siren,
            turret=False,
            is_online=online,
            device_state="NORMAL" if online else "OFFLINE",
            uptime=100,
            change_type=change_type,
            changes={},
            device_time=None,
        )
    )


def alarm(
    device: DeviceTags,
    when: datetime,
    sequence: int,
    *,
    alarm_type: str = "PANIC1",
    event_state: str = "ACTIVE",
    priority: str = "CRITICAL",
) -> str:
    """Line protocol of one alarm point."""
    return alarm_line(
        AlarmPoint(
            tags=device,
            time=when,
            alarm_type=alarm_type,
            event_state=event_state,
            priority=priority,
            sequence=sequence,
            physical_state=event_state == "ACTIVE",
            output_type=None,
            pattern_type=None,
            duration_seconds=0,
            elapsed_seconds=0,
        )
    )


def write(client: InfluxDBClient, bucket: str, lines: Iterable[str]) -> None:
    """Write ``lines`` (millisecond line protocol) into ``bucket`` synchronously."""
    batch: Sequence[str] = list(lines)
    LineWriter(client, bucket).write(batch)
