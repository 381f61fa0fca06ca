"""The device wire contract: protobuf messages and the MQTT topic layout."""

from ingest.contract import alarm_panel_pb2 as pb
from ingest.contract import telemetry_pb2
from ingest.contract.topics import (
    DEVICE_TO_SERVER,
    DeviceTopic,
    TopicError,
    TopicKind,
    TopicScheme,
)

__all__ = [
    "DEVICE_TO_SERVER",
    "DeviceTopic",
    "TopicError",
    "TopicKind",
    "TopicScheme",
    "pb",
    "telemetry_pb2",
]
