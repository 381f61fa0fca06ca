"""Kafka transport: a worker of a consumer group reading the device messages bridges wrote.

In a scaled-out deployment, bridges (``ingest.bridge``) put every MQTT message on a Kafka
topic, in the partition of its device. Workers share the partitions through a consumer group;
each owns the devices of its partitions (``StreamPositions``): it reads their messages in
order, loads their CDC states when the partitions are assigned and drops them when they are
revoked, and saves how far it read in PostgreSQL with each batch, never in Kafka (Kafka's
group offsets are written too, afterwards, for the operators' lag tools only).

The consumer runs in a thread of its own (librdkafka's client is blocking; its rebalance
callbacks run in the thread that polls it) and hands each read to the event loop, where an
``Inbox`` gathers batches as for every transport. The devices are still MQTT devices:
deliveries carry their MQTT topic, the MQTT decoder reads them, and commands are published
to the broker over an MQTT connection of the worker's own.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from fleetwatch.settings import KafkaSettings, MqttSettings
from ingest.contract import TopicKind, TopicScheme
from ingest.decoding import DecodeLimits, Decoder
from ingest.transports.base import Delivery
from ingest.transports.errors import TransportError
from ingest.transports.inbox import Inbox
from ingest.transports.mqtt import connect, publish_command
from ingest.transports.mqtt_wire import MqttWire
from ingest.transports.positions import StreamPositions

logger = logging.getLogger(__name__)
# librdkafka's own log lines (broker connections failing, leaders moving), as log records.
CLIENT_LOG = logging.getLogger("kafka")

# The headers a bridge puts the MQTT topic of each message in, and marks the messages the
# broker flagged as possibly sent before (DUP) with.
TOPIC_HEADER = "mqtt_topic"
REDELIVERED_HEADER = "mqtt_dup"
READ_MAX = 2000  # messages taken from the consumer per call
LAG_COMMIT_S = 5.0  # how often the group's offsets in Kafka are brought up to date
CONNECT_TIMEOUT_S = 10.0


def consumer_config(settings: KafkaSettings, client_id: str) -> dict[str, Any]:
    """The consumer's librdkafka configuration."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "group.id": settings.kafka_group,
        "client.id": client_id,
        # Positions live in PostgreSQL; Kafka's copy is written by hand, for lag tools.
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        # Eager rebalancing: every partition is revoked before any is assigned again, so a
        # partition's new owner starts after its old owner's last batch committed.
        "partition.assignment.strategy": "roundrobin",
        # A worker that died is noticed within this, and its partitions handed on.
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 1_000,
        # A fetch waits up to 20 ms for 64 KiB rather than returning each record alone: at
        # a paced rate this takes most of the broker's cost per message away.
        "fetch.wait.max.ms": 20,
        "fetch.min.bytes": 65_536,
        "topic.metadata.refresh.interval.ms": 10_000,
        "socket.keepalive.enable": True,
        "logger": CLIENT_LOG,
    }


def admin_client(settings: KafkaSettings) -> AdminClient:
    """An admin client of the configured cluster, logging through ``CLIENT_LOG``."""
    client: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "logger": CLIENT_LOG,
    }
    return AdminClient(client)


def ensure_topic(settings: KafkaSettings, timeout_s: float = 30.0) -> int:
    """Create the topic if it is missing; returns its partition count."""
    admin = admin_client(settings)
    topic = settings.kafka_topic
    replicas = settings.kafka_replication
    config = {"min.insync.replicas": str(min(2, replicas))}
    new = NewTopic(topic, settings.kafka_partitions, replicas, config=config)
    future = admin.create_topics([new], request_timeout=timeout_s)[topic]
    try:
        future.result(timeout=timeout_s)
        logger.info(
            "created topic %s (%d partitions, %d replicas)",
            topic,
            settings.kafka_partitions,
            replicas,
        )
    except KafkaException as exc:
        error = exc.args[0]
        if not (isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS):
            raise
    # A topic just created is not in every broker's metadata at once: ask until it is.
    deadline = time.monotonic() + timeout_s
    while True:
        metadata = admin.list_topics(topic, timeout=timeout_s).topics[topic]
        if metadata.error is None:
            return len(metadata.partitions)
        if time.monotonic() > deadline:
            raise KafkaException(metadata.error)
        time.sleep(0.05)


class KafkaTransport:
    """One worker's share of the stream, fed into an inbox; commands out over MQTT.

    Named ``mqtt`` by default: the devices it serves are MQTT devices (``devices.transport``),
    only their messages come by way of Kafka.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        mqtt: MqttSettings,
        conninfo: str,
        *,
        name: str = "mqtt",
        worker: str | None = None,
        queue_size: int = 20_000,
    ) -> None:
        self.name = name
        self._kafka = kafka
        self._mqtt = mqtt
        self.addressing = TopicScheme(mqtt.topic_prefix)
        self.worker = worker or uuid.uuid4().hex[:8]
        self.positions = StreamPositions(conninfo, kafka.kafka_group, kafka.kafka_topic)
        self._inbox = Inbox(name, queue_size)
        self._room = threading.Event()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._ended: asyncio.Future[None] | None = None
        self._commands: MqttWire | None = None

    @property
    def connected(self) -> bool:
        return self._thread is not None and self._commands is not None

    def decoder(self, limits: DecodeLimits) -> Decoder:
        """The MQTT decoder: deliveries carry the topics devices published on."""
        return Decoder(self.addressing, limits)

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        try:  # whichever starts first, bridge or worker, creates the topic
            await asyncio.to_thread(ensure_topic, self._kafka)
        except KafkaException as exc:
            raise TransportError(f"Kafka: {exc}") from exc
        self._commands = await self._open_commands()
        consumer = Consumer(consumer_config(self._kafka, f"fleetwatch-ingest-{self.worker}"))
        try:
            consumer.subscribe(
                [self._kafka.kafka_topic],
                on_assign=self._assigned,
                on_revoke=self._revoked,
                on_lost=self._revoked,
            )
        except Exception as exc:
            consumer.close()
            await self._close_commands()
            raise TransportError(f"Kafka subscribe: {exc}") from exc
        self._ended = loop.create_future()
        self._inbox.open(self._ended, on_room=self._room.set)
        self._room.set()
        self._halt.clear()
        self._thread = threading.Thread(
            target=self._read, args=(consumer, loop, self._ended), name="kafka-consumer"
        )
        self._thread.start()
        logger.info(
            "worker %s joined group %s on %s",
            self.worker,
            self._kafka.kafka_group,
            self._kafka.kafka_topic,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # What is in the inbox was not committed: the partitions' next owner (this worker
        # again, after a reconnect) reads it from the committed positions.
        self._halt.set()
        self._room.set()
        if self._thread is not None:
            thread, self._thread = self._thread, None
            await asyncio.to_thread(thread.join)
        self._inbox.close()
        await self._close_commands()

    async def _open_commands(self) -> MqttWire:
        client_id = f"{self._mqtt.mqtt_client_id}-commands-{self.worker}"
        wire, _ = await connect(self._mqtt, client_id, lambda _: True, clean_session=True)
        return wire

    async def _close_commands(self) -> None:
        if self._commands is not None:
            wire, self._commands = self._commands, None
            await wire.close()

    # --- the consumer thread ------------------------------------------------------------

    def _read(
        self, consumer: Consumer, loop: asyncio.AbstractEventLoop, ended: asyncio.Future[None]
    ) -> None:
        """Poll until halted; hand each read to the loop; leave the group at the end."""
        failure: BaseException | None = None
        try:
            self._poll(consumer, loop)
        except BaseException as exc:
            failure = exc
            logger.exception("Kafka consumer failed")
        finally:
            try:
                consumer.close()  # revokes (waits for the batch in progress) and leaves
            except Exception:
                logger.exception("closing the Kafka consumer")
            loop.call_soon_threadsafe(_end, ended, failure)

    def _poll(self, consumer: Consumer, loop: asyncio.AbstractEventLoop) -> None:
        last_commit = time.monotonic()
        while not self._halt.is_set():
            if not self._room.is_set():
                self._wait_for_room(consumer, loop)
                continue
            messages = _read(consumer)
            if messages:
                deliveries = self._deliveries(messages)
                if deliveries:
                    loop.call_soon_threadsafe(self._put, deliveries)
            if time.monotonic() - last_commit > LAG_COMMIT_S:
                last_commit = time.monotonic()
                self._commit_lag(consumer)

    def _wait_for_room(self, consumer: Consumer, loop: asyncio.AbstractEventLoop) -> None:
        """Pause fetching while the inbox is full; polling on serves the group's rebalances
        and heartbeats (and returns what was fetched before the pause)."""
        paused = consumer.assignment()
        consumer.pause(paused)
        try:
            while not self._room.wait(0.1) and not self._halt.is_set():
                late = consumer.consume(READ_MAX, 0)
                if late and (deliveries := self._deliveries(late)):
                    loop.call_soon_threadsafe(self._put, deliveries)
        finally:
            consumer.resume(consumer.assignment())

    def _deliveries(self, messages: list[Message]) -> list[Delivery]:
        stamps = self.positions.stamps()
        name, out = self.name, []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    logger.warning("Kafka: %s", error)
                continue
            partition, offset = message.partition(), message.offset()
            if partition is None or offset is None:
                continue
            _, millis = message.timestamp()
            topic, redelivered = _mqtt_of(message)
            out.append(
                Delivery(
                    transport=name,
                    address=topic,
                    payload=message.value() or b"",
                    received_at=datetime.fromtimestamp(max(millis, 0) / 1000, UTC),
                    receipt=(stamps.get(partition, -1), partition, offset),
                    redelivered=redelivered,
                )
            )
        return out

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        topic = self._kafka.kafka_topic
        metadata = consumer.list_topics(topic, timeout=CONNECT_TIMEOUT_S).topics[topic]
        count = len(metadata.partitions)
        starts = self.positions.assign(count, [tp.partition for tp in partitions])
        consumer.assign(
            [
                TopicPartition(topic, p, OFFSET_BEGINNING if start is None else start)
                for p, start in starts.items()
            ]
        )

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.positions.revoke([tp.partition for tp in partitions])

    def _commit_lag(self, consumer: Consumer) -> None:
        """Tell Kafka how far the group got (PostgreSQL holds the positions that count)."""
        offsets = [
            TopicPartition(self._kafka.kafka_topic, p, n)
            for p, n in self.positions.committed().items()
        ]
        if offsets:
            try:
                consumer.commit(offsets=offsets, asynchronous=True)
            except Exception as exc:  # noqa: BLE001 - lag figures only; next time
                logger.debug("lag commit: %s", exc)

    # --- the event loop -----------------------------------------------------------------

    def _put(self, deliveries: list[Delivery]) -> None:
        if not self._inbox.extend(deliveries):
            self._room.clear()

    async def next_batch(self, max_size: int, max_wait_s: float) -> list[Delivery]:
        if self._thread is None:
            raise TransportError("Kafka transport is not connected")
        return await self._inbox.next_batch(max_size, max_wait_s)

    def ack(self, deliveries: Sequence[Delivery], verdicts: Sequence[str | None] = ()) -> int:
        """Nothing to do: the batch's transaction saved its positions."""
        return len(deliveries)

    def holds(self, device: str) -> bool:
        """Never: devices are reached through the broker."""
        return False

    async def send(self, device: str, kind: TopicKind, payload: bytes) -> None:
        """Publish to the device's topic of ``kind`` at QoS 1, as the MQTT transport does."""
        await publish_command(self._commands, self.addressing, device, kind, payload)

    @property
    def backlog(self) -> int:
        """Deliveries read but not yet taken into a batch."""
        return self._inbox.backlog


def _read(consumer: Consumer) -> list[Message]:
    """What the consumer holds, without waiting for more once it holds anything: asked for
    READ_MAX with a timeout, the client waits out the whole timeout unless READ_MAX are
    there, which put 100 ms on every message at a paced rate."""
    first = consumer.consume(1, 0.1)
    if not first:
        return first
    return first + consumer.consume(READ_MAX - 1, 0)


def _mqtt_of(message: Message) -> tuple[str, bool]:
    """The MQTT topic a bridge recorded ('' if none: the decoder dead-letters it), and
    whether the broker flagged the message as possibly sent before."""
    headers = message.headers()
    if not isinstance(headers, list):  # a consumer hands headers over as a list of pairs
        return "", False
    topic, redelivered = "", False
    for key, value in headers:
        if key == TOPIC_HEADER and value is not None:
            topic = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        elif key == REDELIVERED_HEADER:
            redelivered = True
    return topic, redelivered


def _end(ended: asyncio.Future[None], failure: BaseException | None) -> None:
    if ended.done():
        return
    if failure is None:
        ended.set_result(None)
    else:
        ended.set_exception(TransportError(f"Kafka consumer failed: {failure}"))
