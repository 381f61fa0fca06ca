"""Transports: how device messages reach ingest and commands reach devices.

Every transport implements ``Transport`` (``base``): it yields ``Delivery`` values, is told
to ``ack`` them after their batch committed, and ``send``s commands to devices. The service
holds its transports in ``Transports`` (``routing``), which routes each command to the
transport its device is on. ``MqttTransport`` (``mqtt``) is today's; each transport gathers
its batches in an ``Inbox`` (``inbox``).
"""

from ingest.transports.base import Addressing, Delivery, MessageDecoder, Origin, Transport
from ingest.transports.errors import AddressError, DeviceUnreachableError, TransportError
from ingest.transports.inbox import Inbox
from ingest.transports.mqtt import MqttReceipt, MqttTransport
from ingest.transports.routing import Transports

__all__ = [
    "AddressError",
    "Addressing",
    "Delivery",
    "DeviceUnreachableError",
    "Inbox",
    "MessageDecoder",
    "MqttReceipt",
    "MqttTransport",
    "Origin",
    "Transport",
    "TransportError",
    "Transports",
]
