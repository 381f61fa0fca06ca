"""What a simulated fleet looks like and how often things happen to it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from simulator.errors import SimulatorConfigError

MAX_DEVICES = 1_000_000  # hostnames and MACs stay unique well beyond this


@dataclass(frozen=True, slots=True, kw_only=True)
class Behaviour:
    """Rates and probabilities of the events the panels go through.

    Rates are per device per simulated day; probabilities are in [0, 1]. The defaults make a
    quiet, realistic fleet; tests and benchmarks raise them to see every path often.
    """

    panic_per_day: float = 0.5
    tamper_per_day: float = 0.2
    output_test_per_day: float = 1.0  # scheduled siren/turret self-tests
    reboot_per_day: float = 0.05
    network_drop_per_day: float = 0.3
    siren_on_panic: float = 0.5  # a panic press starts the siren
    panic2_share: float = 0.3  # of panic presses, how many are on the second button
    out_of_sync_fraction: float = 0.03  # devices that never adopt SET_DEVICE_ID
    command_silence: float = 0.02  # a command is lost: no answer at all
    command_failure: float = 0.05  # acknowledged, then COMPLETED with success=false

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not (math.isfinite(value) and value >= 0):
                raise SimulatorConfigError(f"{item.name} must be >= 0, got {value}")
            if not item.name.endswith("_per_day") and value > 1:
                raise SimulatorConfigError(f"{item.name} is a probability, got {value}")
        if self.command_silence + self.command_failure > 1:
            raise SimulatorConfigError("command_silence + command_failure must not exceed 1")

    @property
    def incidents_per_day(self) -> float:
        """All spontaneous incidents of one device per simulated day."""
        return (
            self.panic_per_day
            + self.tamper_per_day
            + self.output_test_per_day
            + self.reboot_per_day
            + self.network_drop_per_day
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetOptions:
    """The fleet: how many panels, which seed, and how often they report.

    The same options (and start time) always produce the same message stream.
    """

    devices: int
    seed: int = 1
    heartbeat_interval_s: float = 10.0
    status_interval_s: float = 300.0
    behaviour: Behaviour = field(default_factory=Behaviour)
    # Telemetry devices of the shipped device types, besides the panels.
    telemetry: int = 0
    telemetry_interval_s: float = 10.0
    # Robots (seed 004): state every robot_interval_s, job reports as their items get done.
    robots: int = 0
    robot_interval_s: float = 5.0

    def __post_init__(self) -> None:
        if not all(0 <= n <= MAX_DEVICES for n in (self.devices, self.telemetry, self.robots)):
            raise SimulatorConfigError(f"device counts must be 0..{MAX_DEVICES}")
        if self.devices + self.telemetry + self.robots < 1:
            raise SimulatorConfigError("devices: simulate at least one device of some kind")
        for name in (
            "heartbeat_interval_s",
            "status_interval_s",
            "telemetry_interval_s",
            "robot_interval_s",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.1):
                raise SimulatorConfigError(f"{name} must be at least 0.1 s, got {value}")

    @property
    def heartbeat_interval_ms(self) -> int:
        """Heartbeat period in milliseconds."""
        return round(self.heartbeat_interval_s * 1000)

    @property
    def robot_interval_ms(self) -> int:
        """Robot state period in milliseconds."""
        return round(self.robot_interval_s * 1000)

    @property
    def telemetry_interval_ms(self) -> int:
        """Telemetry reading period in milliseconds."""
        return round(self.telemetry_interval_s * 1000)

    @property
    def status_interval_ms(self) -> int:
        """Status period in milliseconds."""
        return round(self.status_interval_s * 1000)
