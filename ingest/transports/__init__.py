"""Transports: how device messages reach ingest and commands reach devices.

Every transport implements ``Transport`` (``base``): it yields ``Delivery`` values, is told
to ``ack`` them after their batch committed, and ``send``s commands to devices. The service
holds its transports in ``Transports`` (``routing``), which routes each command to the
transport its device is on. ``MqttTransport`` (``mqtt``) serves devices through the broker,
``WebSocketTransport`` (``websocket``) devices holding a socket to the API server; each
transport gathers its batches in an ``Inbox`` (``inbox``) and brings its own decoder.
"""

from ingest.transports.base import Addressing, Delivery, MessageDecoder, Origin, Transport
from ingest.transports.errors import AddressError, DeviceUnreachableError, TransportError
from ingest.transports.inbox import Inbox
from ingest.transports.mqtt import MqttReceipt, MqttTransport
from ingest.transports.routing import Transports
from ingest.transports.websocket import WebSocketOptions, WebSocketTransport

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
    "WebSocketOptions",
    "WebSocketTransport",
]
