"""Publishing a prepared stream through the broker at QoS 1 with paho-mqtt's synchronous client.

paho's network loop runs in its own thread (``loop_start``); the caller's thread only hands it
pre-serialised payloads. A window bounds the messages sent but not yet acknowledged by the
broker, so the moment ``publish`` is called is the moment the message goes on the wire,
not the moment it joins an unbounded client-side queue: the latency probes rely on that.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from benchmarks.stream import Outbound, Probe
from fleetwatch.settings import MqttSettings

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
DRAIN_TIMEOUT_S = 60.0
PACE_EVERY = 100  # messages between checks of the publishing pace


class PublishError(RuntimeError):
    """The broker refused the connection or a message, or did not acknowledge in time."""


@dataclass(slots=True)
class PublishResult:
    """What was sent, what the broker acknowledged, and when."""

    sent: int = 0
    acknowledged: int = 0
    started: float = 0.0  # time.time() of the first publish
    finished: float = 0.0  # time.time() when the last PUBACK arrived
    probes: list[tuple[Probe, float]] = field(default_factory=list)  # (probe, publish time)
    error: str | None = None

    @property
    def duration_s(self) -> float:
        return max(self.finished - self.started, 1e-9)


class Publisher(Protocol):
    """What the benchmark asks of a publisher (``StreamPublisher``, or the cheaper
    ``benchmarks.wire_publisher.WirePublisher``)."""

    result: PublishResult

    def prepare(self, messages: Sequence[Outbound]) -> None:
        """Do ahead whatever per-message work can be done before publishing starts."""

    def run(self, messages: Sequence[Outbound]) -> PublishResult:
        """Publish every message and wait for the broker's acknowledgements (blocking)."""
        ...


class StreamPublisher:
    """Publishes a list of prepared messages in order over one connection (order per device
    is what ingest relies on, and one connection keeps it)."""

    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        *,
        window: int = 1000,
        rate: float = 0.0,
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        if rate < 0:
            raise ValueError("rate must be >= 0 (0: as fast as possible)")
        self._settings = settings
        self._client_id = client_id
        self._window = window
        self._rate = rate
        self._slots = threading.Semaphore(window)
        self._connected = threading.Event()
        self._drained = threading.Event()
        self._expected = 0
        self.result = PublishResult()

    def _on_connect(
        self,
        _client: paho.Client,
        _userdata: Any,  # noqa: ANN401 - paho's callback signature
        _flags: Any,  # noqa: ANN401
        reason_code: Any,  # noqa: ANN401
        _properties: Any,  # noqa: ANN401
    ) -> None:
        if reason_code == 0:
            self._connected.set()
        else:
            self.result.error = f"broker refused the publisher: {reason_code}"

    def _on_publish(
        self,
        _client: paho.Client,
        _userdata: Any,  # noqa: ANN401 - paho's callback signature
        _mid: int,
        _reason_code: Any,  # noqa: ANN401
        _properties: Any,  # noqa: ANN401
    ) -> None:
        self.result.acknowledged += 1  # paho calls back from its loop thread only
        self._slots.release()
        if self.result.acknowledged >= self._expected:
            self.result.finished = time.time()
            self._drained.set()

    def _client(self) -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=self._client_id, clean_session=True
        )
        if self._settings.mqtt_username:
            password = self._settings.mqtt_password
            client.username_pw_set(
                self._settings.mqtt_username, password.get_secret_value() if password else None
            )
        # The semaphore is the window. paho's own limit would cost O(in flight) per PUBACK:
        # with one set, every acknowledgement scans all unacknowledged messages for queued ones.
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        return client

    def prepare(self, messages: Sequence[Outbound]) -> None:
        """Nothing to do ahead: paho encodes each packet as it is published."""

    def run(self, messages: Sequence[Outbound]) -> PublishResult:
        """Publish every message and wait for the broker's acknowledgements (blocking)."""
        self._expected = len(messages)
        client = self._client()
        try:
            client.connect(self._settings.mqtt_host, self._settings.mqtt_port)
        except OSError as exc:
            raise PublishError(f"publisher cannot reach the broker: {exc}") from exc
        client.loop_start()
        try:
            if not self._connected.wait(CONNECT_TIMEOUT_S):
                raise PublishError(self.result.error or "publisher connection timed out")
            self._publish_all(client, messages)
            if not self._drained.wait(DRAIN_TIMEOUT_S):
                raise PublishError(
                    f"broker acknowledged {self.result.acknowledged} of {len(messages)} "
                    f"within {DRAIN_TIMEOUT_S:.0f}s"
                )
        finally:
            client.disconnect()
            client.loop_stop()
        return self.result

    def _publish_all(self, client: paho.Client, messages: Sequence[Outbound]) -> None:
        result = self.result
        result.started = time.time()
        for index, message in enumerate(messages):
            if self._rate and index % PACE_EVERY == 0:
                ahead = result.started + index / self._rate - time.time()
                if ahead > 0:
                    time.sleep(ahead)
            self._slots.acquire()
            if message.probe is not None:
                result.probes.append((message.probe, time.time()))
            info = client.publish(message.topic, message.payload, qos=1)
            if info.rc != paho.MQTT_ERR_SUCCESS:
                raise PublishError(f"publish {index} refused: {paho.error_string(info.rc)}")
            result.sent += 1
            if index and index % 50_000 == 0:
                logger.info("published %d of %d", index, len(messages))
