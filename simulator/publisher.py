"""Publishing at QoS 1 without a round trip per message.

aiomqtt's ``publish`` returns only once the broker's PUBACK arrived: one round trip per
message, about 1,500 messages/s on a local broker, far below what a fleet of thousands of
panels at a compressed clock produces. ``PipelinedPublisher`` hands messages to the paho
client underneath aiomqtt (as ``ingest.transports`` does for manual acknowledgements) and
counts the PUBACKs from paho's on_publish callback, chained after aiomqtt's own: up to
``window`` messages are on the wire unacknowledged, which keeps the socket busy and memory
bounded. Callbacks run on the event loop (aiomqtt drives paho from it), so no locking.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, cast

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from simulator.errors import BrokerLostError
from simulator.schedule import Emission

logger = logging.getLogger(__name__)

ACK_TIMEOUT_S = 30.0  # no PUBACK for this long on a live connection: the broker is stuck
_POLL_S = 1.0  # how often a waiting publisher checks that the connection still stands


class PipelinedPublisher:
    """Publishes emissions at QoS 1 with at most ``window`` PUBACKs outstanding.

    Args:
        client: an aiomqtt client not connected yet (paho fixes its in-flight cap at
            connection); the publisher owns its publishing from now on.
        window: messages sent and not yet acknowledged, at most.
    """

    def __init__(self, client: aiomqtt.Client, window: int = 1000) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self._paho: paho.Client = client._client
        self._window = window
        self._acked = asyncio.Event()
        self.sent = 0
        self.confirmed = 0
        # paho caps messages in flight (20 by default) and queues the rest; below its cap it
        # rescans every unacknowledged message on each PUBACK (quadratic in the window).
        # 0 lifts the cap and the rescan; the window above is the bound.
        self._paho.max_inflight_messages_set(0)
        previous = cast(
            "paho.CallbackOnPublish_v2 | None", self._paho.on_publish
        )  # aiomqtt's, set with the VERSION2 callback API

        def confirmed(
            client: paho.Client,
            userdata: Any,  # noqa: ANN401 - paho's user data is untyped
            mid: int,
            reason_code: ReasonCode,
            properties: Properties,
        ) -> None:
            if previous is not None:
                previous(client, userdata, mid, reason_code, properties)
            self.confirmed += 1
            self._acked.set()

        self._paho.on_publish = confirmed

    @property
    def in_flight(self) -> int:
        """Messages sent and not yet acknowledged by the broker."""
        return self.sent - self.confirmed

    async def publish(self, emissions: Sequence[Emission]) -> None:
        """Send each emission at QoS 1, waiting only while the window is full."""
        publish, window = self._paho.publish, self._window
        for emission in emissions:
            while self.sent - self.confirmed >= window:
                await self._wait_for_acks()
            info = publish(emission.topic, emission.payload, 1)
            if info.rc != paho.MQTT_ERR_SUCCESS:
                raise BrokerLostError(f"publish refused: {paho.error_string(info.rc)}")
            self.sent += 1

    async def drain(self, timeout_s: float = ACK_TIMEOUT_S) -> None:
        """Wait until every message sent is acknowledged (BrokerLostError after timeout)."""
        try:
            async with asyncio.timeout(timeout_s):
                while self.in_flight > 0:
                    await self._wait_for_acks()
        except TimeoutError:
            raise BrokerLostError(
                f"{self.in_flight} messages still unacknowledged after {timeout_s:.0f} s"
            ) from None

    async def _wait_for_acks(self) -> None:
        waited = 0.0
        while True:
            self._acked.clear()
            try:
                async with asyncio.timeout(_POLL_S):
                    await self._acked.wait()
            except TimeoutError:
                waited += _POLL_S
                if not self._paho.is_connected():
                    raise BrokerLostError(
                        f"connection lost with {self.in_flight} messages unacknowledged"
                    ) from None
                if waited >= ACK_TIMEOUT_S:
                    raise BrokerLostError(f"no PUBACK for {ACK_TIMEOUT_S:.0f} s") from None
                continue
            return
