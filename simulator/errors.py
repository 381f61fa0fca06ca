"""The simulator's exceptions: one base, a configuration error and a broker error."""

from __future__ import annotations


class SimulatorError(RuntimeError):
    """Base of every error the simulator raises on purpose."""


class SimulatorConfigError(SimulatorError, ValueError):
    """An option is out of range (device count, speed, an interval, a probability)."""


class BrokerLostError(SimulatorError):
    """The MQTT broker refused the connection, dropped it or stopped acknowledging."""
