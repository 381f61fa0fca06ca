"""The transports' exceptions: what the service and the dispatcher can act on.

A transport converts its connection's errors into these at its boundary, so nothing above
it catches socket, protocol or WebSocket server errors by name.
"""

from __future__ import annotations


class TransportError(Exception):
    """A transport's connection failed or ended; the service reconnects with backoff."""


class DeviceUnreachableError(TransportError):
    """The device cannot be reached through its transport right now (not connected to it,
    or the transport is down); a command for it waits for a later dispatch."""


class AddressError(TransportError, ValueError):
    """The device's name does not fit the transport's addresses: a command to it can never
    be sent, so it is failed instead of being tried again."""
