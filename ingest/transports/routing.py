"""The transports of one ingest process, by name, and which one a command goes through."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ingest.contract import TopicKind
from ingest.transports.base import Transport
from ingest.transports.errors import DeviceUnreachableError


class Transports:
    """The transports a service serves, in order; the first is the default route.

    A command goes through the transport holding a connection to its device (a device
    connected over WebSocket is answered on that socket). A device no transport holds is
    reached through the default transport: MQTT, whose broker delivers to the device's
    persistent session.
    """

    def __init__(self, transports: Sequence[Transport]) -> None:
        if not transports:
            raise ValueError("an ingest service needs at least one transport")
        names = [transport.name for transport in transports]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"transport names must be unique; repeated: {repeated}")
        self._by_name = {transport.name: transport for transport in transports}

    def __iter__(self) -> Iterator[Transport]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def __getitem__(self, name: str) -> Transport:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no transport {name!r}; known: {sorted(self._by_name)}") from None

    @property
    def default(self) -> Transport:
        """The transport of devices no transport holds a connection to."""
        return next(iter(self._by_name.values()))

    def connected(self) -> dict[str, bool]:
        """Each transport's connection state, by name."""
        return {name: transport.connected for name, transport in self._by_name.items()}

    def route(self, device: str) -> Transport:
        """The transport a message to ``device`` goes through."""
        for transport in self._by_name.values():
            if transport.holds(device):
                return transport
        return self.default

    async def send(self, device: str, kind: TopicKind, payload: bytes) -> None:
        """Send through the device's route; DeviceUnreachableError if that one is down."""
        transport = self.route(device)
        if not transport.connected:
            raise DeviceUnreachableError(f"{transport.name} is not connected")
        await transport.send(device, kind, payload)
