"""fleetwatch: ingest, store and report on fleets of MQTT field devices."""

__version__ = "0.1.0"
