"""A simulated fleet of ESP32 alarm panels speaking the real wire contract over MQTT.

``Fleet`` generates the panels' messages deterministically from a seed, without I/O;
``Simulator`` publishes them through a broker against a compressed clock and answers the
commands the panels receive (``fleetwatch simulate``).
"""

from simulator.clock import SimClock
from simulator.commands import Outcome
from simulator.errors import BrokerLostError, SimulatorConfigError, SimulatorError
from simulator.fleet import Fleet
from simulator.options import Behaviour, FleetOptions
from simulator.run import RunOptions, RunStats, Simulator
from simulator.schedule import Emission

__all__ = [
    "Behaviour",
    "BrokerLostError",
    "Emission",
    "Fleet",
    "FleetOptions",
    "Outcome",
    "RunOptions",
    "RunStats",
    "SimClock",
    "Simulator",
    "SimulatorConfigError",
    "SimulatorError",
]
