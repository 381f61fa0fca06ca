"""The simulated clock and the options' validation."""

from __future__ import annotations

import pytest

from simulator import Behaviour, FleetOptions, SimClock, SimulatorConfigError
from simulator.run import RunOptions


class FakeMonotonic:
    """A real clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_clock_runs_speed_times_faster() -> None:
    """At speed 60 one real second is a simulated minute, from the start instant on."""
    real = FakeMonotonic()
    clock = SimClock(1_000_000, speed=60, monotonic=real)
    assert clock.now_ms() == 1_000_000
    real.now += 1.5
    assert clock.now_ms() == 1_090_000
    assert clock.real_seconds_until(1_150_000) == pytest.approx(1.0)
    assert clock.real_seconds_until(0) == 0.0
    assert clock.real_elapsed() == pytest.approx(1.5)


@pytest.mark.parametrize("speed", [0.0, -1.0, float("inf"), float("nan")])
def test_clock_refuses_a_bad_speed(speed: float) -> None:
    """A speed that is not a positive finite number is refused with a clear error."""
    with pytest.raises(SimulatorConfigError, match="speed"):
        SimClock(0, speed=speed)


def test_options_refuse_impossible_values() -> None:
    """Options validate themselves: device count, intervals, rates, duration."""
    with pytest.raises(SimulatorConfigError, match="devices"):
        FleetOptions(devices=0)
    with pytest.raises(SimulatorConfigError, match="heartbeat_interval_s"):
        FleetOptions(devices=1, heartbeat_interval_s=0)
    with pytest.raises(SimulatorConfigError, match="probability"):
        Behaviour(siren_on_panic=1.5)
    with pytest.raises(SimulatorConfigError, match="panic_per_day"):
        Behaviour(panic_per_day=-1)
    with pytest.raises(SimulatorConfigError, match="duration"):
        RunOptions(duration_s=0)
