"""Simulated TonyPi robots (seed 004): state and job messages in JSON.

A robot alternates between work and charging. At work it runs jobs: each has a number of
items, each item takes a while, and the robot reports the job after every item; now and
then a job fails, and rarely the robot stops reporting one (ingest fails it after its
silence). Its battery drains with the servos' load and recharges at the dock; servos heat
with their load and cool when idle; the CPU follows the work; the IMU shows gravity plus the
shaking of the gait while walking; an environmental sensor reads the room's temperature.
"""

from __future__ import annotations

import json
import math
import random
from typing import Final

from ingest.contract import TopicKind, TopicScheme
from simulator.schedule import Agenda, Emission

SERVOS: Final = 6
GRAVITY: Final = 9.81
_DRAIN_PER_S_AT_WORK = 0.012  # % of the battery per second under a walking load
_CHARGE_PER_S = 0.05
_LOW_BATTERY = 25.0
_FULL_BATTERY = 95.0
_ITEM_S = (5.0, 30.0)
_JOB_ITEMS = (20, 120)
_JOB_FAILURE = 0.05  # of jobs
_JOB_ABANDONED = 0.02  # of jobs: the robot stops reporting them
_SERVO_HEAT_TIME_S = 600.0  # how long a servo takes to reach its load's temperature


def robot_id(index: int) -> str:
    """``tonypi_01``, ``tonypi_02``, ...: seed 004's naming."""
    return f"tonypi_{index:02d}"


class Robot:
    """One robot on the fleet's agenda: its state every interval, its jobs as they go."""

    def __init__(
        self,
        index: int,
        *,
        seed: int,
        scheme: TopicScheme,
        interval_ms: int,
        agenda: Agenda,
        out: list[Emission],
        start_ms: int,
    ) -> None:
        self.robot_id = robot_id(index)
        self._state_topic = scheme.topic(self.robot_id, TopicKind.ROBOT)
        self._job_topic = scheme.topic(self.robot_id, TopicKind.JOB)
        self._rng = random.Random(f"{seed}:{index}:robot")  # noqa: S311 - a simulation
        self._agenda = agenda
        self._out = out
        self._interval_ms = interval_ms
        self._last_ms = start_ms
        rng = self._rng
        self.battery = rng.uniform(50.0, 100.0)
        self.charging = False
        self._servo_temp = [rng.uniform(30.0, 35.0) for _ in range(SERVOS)]
        self._position = [2048 + rng.randint(-200, 200) for _ in range(SERVOS)]
        self._jobs = 0
        self.job: dict[str, object] | None = None
        self._room = rng.uniform(19.0, 25.0)
        agenda.at(start_ms + rng.randrange(max(interval_ms, 1)), self._report)
        agenda.at(start_ms + rng.randrange(60_000), self._next_job)

    @property
    def working(self) -> bool:
        """True while a job is in progress (the robot walks and carries)."""
        return self.job is not None

    def _report(self, now_ms: int) -> None:
        self._out.append(Emission(now_ms, self._state_topic, self.state(now_ms)))
        self._agenda.at(now_ms + self._interval_ms, self._report)

    def state(self, now_ms: int) -> bytes:
        """The robot's state message at ``now_ms`` (advancing its battery and servos)."""
        dt_s = max(now_ms - self._last_ms, 0) / 1000
        self._last_ms = now_ms
        rng = self._rng
        load = rng.uniform(25.0, 60.0) if self.working else rng.uniform(0.0, 5.0)
        if self.charging:
            self.battery = min(100.0, self.battery + _CHARGE_PER_S * dt_s)
        else:
            self.battery = max(0.0, self.battery - _DRAIN_PER_S_AT_WORK * dt_s * load / 40.0)
        settle = 1.0 - math.exp(-dt_s / _SERVO_HEAT_TIME_S)
        servos = {}
        for n in range(SERVOS):
            target = self._room + 10.0 + load * 0.6 + n
            self._servo_temp[n] += (target - self._servo_temp[n]) * settle
            if self.working:
                self._position[n] = min(4095, max(0, self._position[n] + rng.randint(-300, 300)))
            servos[f"servo_{n + 1}"] = {
                "position": self._position[n],
                "temperature": round(self._servo_temp[n], 1),
                "load": _percent(load + rng.gauss(0.0, 5.0)),
                "voltage": round(7.4 - (100.0 - self.battery) * 0.01, 2),
                "speed": rng.randint(100, 400) if self.working else 0,
            }
        shake = 1.5 if self.working else 0.05
        body = {
            "robot_id": self.robot_id,
            "timestamp": now_ms,
            "status": "online",
            "battery": {
                "voltage": round(10.5 + 2.1 * self.battery / 100.0, 2),
                "percentage": round(self.battery, 1),
                "current": round(-1.5 if self.charging else load / 20.0, 2),
                "charging": self.charging,
            },
            "performance": {
                "cpu_percent": _percent((55.0 if self.working else 12.0) + rng.gauss(0, 6)),
                "memory_percent": _percent(40.0 + rng.gauss(0, 1.0)),
                "disk_percent": 35.0,
            },
            "servos": servos,
            "imu": {
                "accel_x": round(rng.gauss(0.0, shake), 2),
                "accel_y": round(rng.gauss(0.0, shake), 2),
                "accel_z": round(GRAVITY + rng.gauss(0.0, shake), 2),
                "gyro_x": round(rng.gauss(0.0, shake * 6), 1),
                "gyro_y": round(rng.gauss(0.0, shake * 6), 1),
                "gyro_z": round(rng.gauss(0.0, shake * 6), 1),
                "mag_x": 22.0,
                "mag_y": 4.0,
                "mag_z": -41.0,
            },
            "sensors": [
                {
                    "sensor_type": "temperature",
                    "unit": "°C",
                    "value": round(self._room + rng.gauss(0, 0.2), 2),
                }
            ],
        }
        return json.dumps(body, separators=(",", ":")).encode()

    def _next_job(self, now_ms: int) -> None:
        """Start a job, or charge first when the battery is low."""
        if self.battery < _LOW_BATTERY:
            self.charging = True
            wait_s = (_FULL_BATTERY - self.battery) / _CHARGE_PER_S
            self._agenda.at(now_ms + int(wait_s * 1000), self._charged)
            return
        self._jobs += 1
        rng = self._rng
        self.job = {
            "job_id": f"{self.robot_id}-job-{self._jobs:04d}",
            "items_total": rng.randint(*_JOB_ITEMS),
            "items_done": 0,
            "abandon": rng.random() < _JOB_ABANDONED,
            "fail_at": rng.randint(1, 20) if rng.random() < _JOB_FAILURE else None,
        }
        self._emit_job(now_ms, "active")
        self._agenda.at(now_ms + self._item_ms(), self._item_done)

    def _charged(self, now_ms: int) -> None:
        self.charging = False
        self._next_job(now_ms)

    def _item_ms(self) -> int:
        return int(self._rng.uniform(*_ITEM_S) * 1000)

    def _item_done(self, now_ms: int) -> None:
        job = self.job
        if job is None:
            return
        done = int(job["items_done"]) + 1  # type: ignore[call-overload]
        job["items_done"] = done
        if job["abandon"] and done > 3:
            self.job = None  # never reported on again: ingest fails it after its silence
            self._agenda.at(now_ms + 60_000, self._next_job)
            return
        if job["fail_at"] is not None and done >= int(job["fail_at"]):  # type: ignore[call-overload]
            self._emit_job(now_ms, "failed", reason="gripper jammed")
        elif done >= int(job["items_total"]):  # type: ignore[call-overload]
            self._emit_job(now_ms, "completed")
        else:
            self._emit_job(now_ms, "active")
            self._agenda.at(now_ms + self._item_ms(), self._item_done)
            return
        self.job = None
        self._agenda.at(now_ms + self._rng.randint(10_000, 120_000), self._next_job)

    def _emit_job(self, now_ms: int, status: str, *, reason: str | None = None) -> None:
        job = self.job or {}
        body: dict[str, object] = {
            "robot_id": self.robot_id,
            "job_id": job["job_id"],
            "timestamp": now_ms,
            "items_total": job["items_total"],
            "items_done": job["items_done"],
            "status": status,
            "last_item": {"item": job["items_done"], "bin": self._rng.choice("ABCD")},
        }
        if reason:
            body["reason"] = reason
        self._out.append(
            Emission(now_ms, self._job_topic, json.dumps(body, separators=(",", ":")).encode())
        )


def _percent(value: float) -> float:
    """``value`` rounded and kept within 0-100 %."""
    return round(min(100.0, max(0.0, value)), 1)
