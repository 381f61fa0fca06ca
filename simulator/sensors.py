"""The panel's environment: enclosure temperature and humidity, and the fan that follows them.

Temperature is the enclosure's mean plus a daily cycle (warmest mid-afternoon, solar time of
the site) plus a mean-reverting random walk (Ornstein-Uhlenbeck: weather, sun, doors); the
humidity moves against the temperature with a walk of its own; the fan's PWM duty follows
the temperature from the device's start threshold to full speed 12 °C above it.
"""

from __future__ import annotations

import math
import random

from simulator.profiles import Profile

MS_PER_HOUR = 3_600_000
TEMPERATURE_LIMITS = (-40.0, 125.0)  # the sensor's range
HUMIDITY_LIMITS = (2.0, 98.0)  # a capacitive sensor never reads 0 or 100
_WALK_TIME_CONSTANT_MS = 2 * MS_PER_HOUR  # how long a disturbance takes to fade
_TEMPERATURE_WALK_STD = 1.2  # °C, stationary standard deviation
_HUMIDITY_WALK_STD = 4.0  # points
_HUMIDITY_PER_DEGREE = 1.8  # warmer air in the same box: lower relative humidity
_FAN_MIN_DUTY = 25
_FAN_SPAN_C = 12.0


class Sensors:
    """One panel's sensor readings over simulated time; cheap enough per heartbeat."""

    __slots__ = ("_cache_dt", "_decay", "_h", "_last_ms", "_noise", "_profile", "_rng", "_t")

    def __init__(self, profile: Profile, rng: random.Random, start_ms: int) -> None:
        self._profile = profile
        self._rng = rng
        self._t = rng.gauss(0.0, _TEMPERATURE_WALK_STD)
        self._h = rng.gauss(0.0, _HUMIDITY_WALK_STD)
        self._last_ms = start_ms
        self._cache_dt = -1
        self._decay = 1.0
        self._noise = 0.0

    def read(self, now_ms: int) -> tuple[float, float, int]:
        """(temperature °C, relative humidity %, fan duty %) at ``now_ms``."""
        self._advance(now_ms)
        p = self._profile
        hour = (now_ms / MS_PER_HOUR + p.utc_offset_h) % 24.0
        daily = p.daily_amplitude_c * math.sin(2.0 * math.pi * (hour - 9.0) / 24.0)
        temperature = _clamp(p.enclosure_c + daily + self._t, TEMPERATURE_LIMITS)
        humidity = _clamp(
            p.humidity - _HUMIDITY_PER_DEGREE * (daily + self._t) + self._h, HUMIDITY_LIMITS
        )
        excess = temperature - p.fan_start_c
        fan = 0 if excess < 0 else min(100, _FAN_MIN_DUTY + round(excess * 75 / _FAN_SPAN_C))
        return round(temperature, 2), round(humidity, 1), fan

    def _advance(self, now_ms: int) -> None:
        dt = now_ms - self._last_ms
        if dt <= 0:
            return
        self._last_ms = now_ms
        if dt != self._cache_dt:  # heartbeats come at one interval: computed once
            self._cache_dt = dt
            self._decay = math.exp(-dt / _WALK_TIME_CONSTANT_MS)
            self._noise = math.sqrt(1.0 - self._decay * self._decay)
        gauss = self._rng.gauss
        self._t = self._t * self._decay + _TEMPERATURE_WALK_STD * self._noise * gauss(0.0, 1.0)
        self._h = self._h * self._decay + _HUMIDITY_WALK_STD * self._noise * gauss(0.0, 1.0)


def _clamp(value: float, limits: tuple[float, float]) -> float:
    low, high = limits
    return low if value < low else high if value > high else value
