"""The MQTT-to-Kafka bridge of a scaled-out deployment.

A bridge holds a persistent QoS 1 session with one MQTT broker and puts every message it
receives on the Kafka topic, in the partition of its device (``partition_of`` its hostname,
so each device's messages stay in order and the workers know which devices are theirs). The
producer is idempotent and waits for every in-sync replica (``acks=all``); a message is
acknowledged to the broker only once Kafka has acknowledged it, so a bridge killed at any
moment loses nothing: the broker delivers the unacknowledged messages again, and the ingest
workers recognise those already stored as they recognise any redelivery.

While Kafka is unreachable the producer keeps what it has (no delivery deadline), the bridge
stops reading from the broker once ``max_pending`` messages wait, and the broker keeps the
backlog in the bridge's session until Kafka is back.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from fleetwatch.settings import KafkaSettings, MqttSettings
from ingest.contract import TopicError, TopicScheme
from ingest.health import HealthServer, Reply, json_reply
from ingest.loops import wait_or_stop
from ingest.partitioning import partition_of
from ingest.transports.errors import TransportError
from ingest.transports.kafka import CLIENT_LOG, REDELIVERED_HEADER, TOPIC_HEADER, ensure_topic
from ingest.transports.mqtt import connect, subscribe_all
from ingest.transports.mqtt_wire import MqttWire, Publish

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
# Past this, a payload is cut before it goes to Kafka (whose records are limited to 1 MB by
# default); ingest's decoder refuses anything this long, so it is still dead-lettered, with
# its beginning kept.
MAX_FORWARDED_BYTES = 256 * 1024
DUP_HEADER: tuple[str, str | bytes | None] = (REDELIVERED_HEADER, b"1")
STALL_S = 30.0  # a message unacknowledged by Kafka this long makes the bridge not ready


def producer_config(settings: KafkaSettings, client_id: str) -> dict[str, Any]:
    """The producer's librdkafka configuration."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "client.id": client_id,
        # Retries never duplicate or reorder a partition's records, and a record counts as
        # written only once every in-sync replica has it.
        "enable.idempotence": True,
        "acks": "all",
        # No deadline: while Kafka is away, records wait (and the broker keeps the rest).
        "message.timeout.ms": 0,
        # Records wait up to 25 ms to share a request: at a paced rate, requests of one
        # record each cost the broker several times more per message.
        "linger.ms": 25,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
        "logger": CLIENT_LOG,
    }


@dataclass(slots=True)
class _Pending:
    """A message given to the producer and not yet acknowledged to the broker."""

    connection: int
    packet_id: int
    since: float  # time.monotonic() when it was given to the producer
    delivered: bool = False


@dataclass(slots=True)
class BridgeTotals:
    """Counts since start-up."""

    received: int = 0
    forwarded: int = 0  # acknowledged by Kafka
    acknowledged: int = 0  # to the broker
    truncated: int = 0
    failures: list[str] = field(default_factory=list)


class Bridge:
    """One broker's messages onto the Kafka topic; ``run`` until ``stop``."""

    def __init__(
        self,
        mqtt: MqttSettings,
        kafka: KafkaSettings,
        *,
        client_id: str = "fleetwatch-bridge",
        max_pending: int = 50_000,
        retry_max_s: float = 15.0,
        health: tuple[str, int] | None = None,
    ) -> None:
        self._mqtt = mqtt
        self._kafka = kafka
        self._client_id = client_id
        self._max_pending = max_pending
        self._retry_max_s = retry_max_s
        self._scheme = TopicScheme(mqtt.topic_prefix)
        self._pending: deque[_Pending] = deque()
        self._wire: MqttWire | None = None
        self._connection = 0
        self._count = 0
        self._producer: Producer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failed: asyncio.Future[None] | None = None
        self.totals = BridgeTotals()
        self.connected = asyncio.Event()
        # /healthz: the bridge runs (it exits when Kafka refuses a record for good);
        # /readyz: the broker session is up and Kafka acknowledged lately what it was given.
        routes = {"/healthz": self._healthz, "/readyz": self._readyz}
        self.health = None if health is None else HealthServer(routes, *health)

    async def run(self, stop: asyncio.Event) -> None:
        """Bridge until ``stop``; raises if Kafka refuses a record for good."""
        self._loop = asyncio.get_running_loop()
        self._failed = self._loop.create_future()
        if self.health is not None:
            await self.health.start()
        try:
            await self._run(stop)
        finally:
            if self.health is not None:
                await self.health.close()

    async def _healthz(self) -> Reply:
        failed = self._failed is not None and self._failed.done()
        return json_reply(not failed, {"failed": failed})

    async def _readyz(self) -> Reply:
        """Ready while connected to the broker and Kafka keeps up: nothing has waited for
        its acknowledgement longer than STALL_S."""
        oldest = self._pending[0].since if self._pending else None
        stalled = oldest is not None and time.monotonic() - oldest > STALL_S
        checks = {"broker": self.connected.is_set(), "kafka": not stalled}
        return json_reply(all(checks.values()), {"checks": checks, "waiting": len(self._pending)})

    async def _run(self, stop: asyncio.Event) -> None:
        assert self._failed is not None
        self._count = await self._partition_count(stop)
        if stop.is_set():
            return
        producer = Producer(producer_config(self._kafka, self._client_id))
        self._producer = producer
        halt = threading.Event()
        poller = threading.Thread(target=self._poll, args=(producer, halt), name="kafka-producer")
        poller.start()
        reporter = asyncio.create_task(self._report(stop))
        try:
            await self._connect_loop(stop)
        finally:
            # Stop reading, let Kafka acknowledge what it was given and pass that on; what
            # it has not acknowledged is not acknowledged to the broker either.
            if self._wire is not None:
                self._wire.pause()
            await asyncio.to_thread(producer.flush, 10.0)
            self._settle()
            await self._disconnect()
            halt.set()
            await asyncio.to_thread(poller.join)
            reporter.cancel()
        if self._failed.done():
            self._failed.result()

    async def _report(self, stop: asyncio.Event, every_s: float = 30.0) -> None:
        """A log line of the totals now and then."""
        last, at = 0, time.monotonic()
        while not await wait_or_stop(stop, every_s):
            totals, now = self.totals, time.monotonic()
            rate = (totals.forwarded - last) / max(now - at, 1e-9)
            last, at = totals.forwarded, now
            logger.info(
                "bridge: %d received, %d in Kafka (%.0f/s), %d acknowledged, %d waiting",
                totals.received,
                totals.forwarded,
                rate,
                totals.acknowledged,
                len(self._pending),
            )

    async def _partition_count(self, stop: asyncio.Event) -> int:
        delay = 0.5
        while not stop.is_set():
            try:
                return await asyncio.to_thread(ensure_topic, self._kafka)
            except KafkaException as exc:
                logger.warning("Kafka: %s; retrying in %.1fs", exc, delay)
            if await wait_or_stop(stop, delay):
                break
            delay = min(delay * 2, self._retry_max_s)
        return 0

    async def _connect_loop(self, stop: asyncio.Event) -> None:
        delay = 0.5
        assert self._failed is not None
        failed = self._failed
        while not stop.is_set() and not failed.done():
            try:
                wire = await self._connect()
            except TransportError as exc:
                logger.warning("MQTT: %s; reconnecting in %.1fs", exc, delay)
            else:
                delay = 0.5
                self.connected.set()
                ended = await _first_done(wire.closed, failed, asyncio.ensure_future(stop.wait()))
                self.connected.clear()
                if ended is wire.closed and wire.closed.exception() is not None:
                    logger.warning("MQTT: %s; reconnecting", wire.closed.exception())
                await self._disconnect()
                continue
            if await wait_or_stop(stop, delay):
                return
            delay = min(delay * 2, self._retry_max_s)

    async def _connect(self) -> MqttWire:
        self._connection += 1
        connection = self._connection
        wire, kept = await connect(
            self._mqtt,
            self._client_id,
            functools.partial(self._receive, connection),
            clean_session=False,
        )
        self._wire = wire
        try:
            await subscribe_all(wire, self._scheme, kept)
        except TransportError:
            await self._disconnect()
            raise
        subscription = self._scheme.subscription()
        logger.info("bridging %s to Kafka topic %s", subscription, self._kafka.kafka_topic)
        return wire

    async def _disconnect(self) -> None:
        if self._wire is not None:
            wire, self._wire = self._wire, None
            await wire.close()

    def _receive(self, connection: int, publishes: list[Publish]) -> bool:
        """Produce one socket read's publishes; False (stop reading) while too many wait."""
        if connection != self._connection or self._producer is None:
            return True  # a closing connection's tail: the broker delivers it again
        produce, topic, count = self._producer.produce, self._kafka.kafka_topic, self._count
        now_ms, since = int(datetime.now(UTC).timestamp() * 1000), time.monotonic()
        for mqtt_topic, payload, packet_id, dup in publishes:
            key = self._key(mqtt_topic)
            value = payload
            if len(value) > MAX_FORWARDED_BYTES:
                value = value[: MAX_FORWARDED_BYTES + 1]
                self.totals.truncated += 1
            pending = _Pending(connection, packet_id, since)
            self._pending.append(pending)
            headers: list[tuple[str, str | bytes | None]] = [(TOPIC_HEADER, mqtt_topic)]
            if dup:
                headers.append(DUP_HEADER)
            report = functools.partial(self._delivered, pending)
            while True:
                try:
                    produce(
                        topic,
                        value,
                        key,
                        partition=_partition(key, count),
                        on_delivery=report,
                        timestamp=now_ms,
                        headers=headers,
                    )
                    break
                except BufferError:  # the producer's own queue is full: let it drain
                    if self._producer.poll(0.05):
                        self._settle()
        self.totals.received += len(publishes)
        return len(self._pending) < self._max_pending

    def _key(self, mqtt_topic: str) -> str:
        try:
            return self._scheme.parse(mqtt_topic).hostname
        except TopicError:
            return mqtt_topic  # not a device's topic: ingest dead-letters it

    # --- delivery reports (the producer thread) -----------------------------------------

    def _delivered(self, pending: _Pending, error: KafkaError | None, _: Message) -> None:
        if error is not None:
            loop, failed = self._loop, self._failed
            assert loop is not None
            assert failed is not None
            loop.call_soon_threadsafe(_fail, failed, error)
            return
        pending.delivered = True

    def _poll(self, producer: Producer, halt: threading.Event) -> None:
        """Serve delivery reports; after each poll that served some, settle the acks."""
        loop = self._loop
        assert loop is not None
        while not halt.is_set():
            if producer.poll(0.05):
                loop.call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        """Acknowledge to the broker, in the order received, what Kafka has."""
        pending, current = self._pending, self._connection
        ids: list[int] = []
        delivered = 0
        while pending and pending[0].delivered:
            done = pending.popleft()
            delivered += 1
            if done.connection == current and done.packet_id:
                ids.append(done.packet_id)
        self.totals.forwarded += delivered
        wire = self._wire
        if wire is None:
            return
        if ids:
            try:
                wire.ack(ids)
                self.totals.acknowledged += len(ids)
            except TransportError:
                return  # gone: the broker delivers them again
        if len(pending) < self._max_pending // 2:
            wire.resume()


@functools.lru_cache(maxsize=200_000)
def _partition(key: str, count: int) -> int:
    return partition_of(key, count)


def _fail(failed: asyncio.Future[None], error: KafkaError) -> None:
    if not failed.done():
        failed.set_exception(RuntimeError(f"Kafka refused a record: {error}"))


async def _first_done(*waits: asyncio.Future[Any]) -> asyncio.Future[Any]:
    """Whichever of ``waits`` completes first (the others, if tasks of ours, cancelled)."""
    done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        if isinstance(task, asyncio.Task):
            task.cancel()
    return next(iter(done))
