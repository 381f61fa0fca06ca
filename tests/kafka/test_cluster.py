"""The tests' three-node Kafka cluster does what the fault tests rely on.

A keyed stream goes to a topic of six partitions with three replicas, two of them required
in sync, through an idempotent producer that waits for all in-sync replicas; one node is
killed in the middle of it. Everything sent must then be in the topic exactly once (by the
partitions' offsets, not only by what a consumer sees), and each key's messages in the
order they were sent.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from tests.support.kafka_cluster import KafkaCluster

logger = logging.getLogger(__name__)

PARTITIONS = 6
KEYS = 24
ROUNDS = 200  # 4,800 messages, one per key per round
KILLED_AT_ROUND = 70
IN_FLIGHT_ROUNDS = 3  # how far sending may run ahead of the acknowledgements
WAIT_S = 45.0


def test_a_node_killed_mid_stream_loses_reorders_and_doubles_nothing(
    kafka_cluster: KafkaCluster, kafka_topic: str
) -> None:
    """Killing one of three nodes while an idempotent acks=all producer sends leaves every
    message stored once, and every key's messages in order."""
    kafka_cluster.create_topic(
        kafka_topic, partitions=PARTITIONS, replication_factor=3, min_insync=2
    )
    victim = kafka_cluster.partition_leaders(kafka_topic)[0]

    _produce(kafka_cluster, kafka_topic, victim)
    received = _consume(kafka_cluster.bootstrap, kafka_topic, KEYS * ROUNDS)

    sent_rounds = list(range(ROUNDS))
    out_of_order = {key: rounds for key, rounds in received.items() if rounds != sent_rounds}
    assert not out_of_order, f"keys received out of order or not once: {sorted(out_of_order)}"
    assert set(received) == {_key(k) for k in range(KEYS)}
    assert _stored(kafka_cluster.bootstrap, kafka_topic) == KEYS * ROUNDS, "duplicates stored"


def _key(number: int) -> str:
    return f"device-{number:03d}"


def _produce(cluster: KafkaCluster, topic: str, victim: int) -> None:
    """Send ROUNDS rounds of one message per key, killing ``victim`` while rounds are in flight."""
    failures: list[str] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            failures.append(f"{message.key()!r}: {error}")

    producer = Producer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            # Fail within the test rather than after librdkafka's default five minutes.
            "message.timeout.ms": int(WAIT_S * 1000),
            "reconnect.backoff.max.ms": 500,
            "logger": logging.getLogger(f"{__name__}.producer"),
        }
    )
    for round_number in range(ROUNDS):
        for key in range(KEYS):
            producer.produce(
                topic,
                key=_key(key),
                value=f"{round_number}".encode(),
                on_delivery=delivered,
            )
        if round_number == KILLED_AT_ROUND:
            cluster.kill(victim)
            logger.info("killed node %d with %d messages unacknowledged", victim, len(producer))
        # A steady stream, not one burst: a bounded window of unacknowledged rounds, so
        # the kill falls among messages in flight and the rest follow the failover.
        while len(producer) > IN_FLIGHT_ROUNDS * KEYS:
            producer.poll(0.05)
    left = producer.flush(WAIT_S)
    assert left == 0, f"{left} messages not acknowledged within {WAIT_S:.0f}s"
    assert not failures, f"{len(failures)} deliveries failed, first: {failures[:5]}"


def _consume(bootstrap: str, topic: str, expected: int) -> dict[str, list[int]]:
    """Every key's rounds, in the order a consumer group member receives them.

    The group's coordinator lives in the replicated offsets topic, so joining and committing
    also prove the internal topics outlived the killed node.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"t_group_{uuid.uuid4().hex[:12]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "reconnect.backoff.max.ms": 500,
            "logger": logging.getLogger(f"{__name__}.consumer"),
        }
    )
    received: dict[str, list[int]] = defaultdict(list)
    count = 0
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + WAIT_S
        while count < expected and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=1.0):
                error = message.error()
                assert error is None, f"consumer error: {error}"
                key, value = message.key(), message.value()
                assert key is not None, "a message without its key"
                assert value is not None, "a message without its value"
                received[key.decode()].append(int(value))
                count += 1
        assert count == expected, f"received {count} of {expected} messages"
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return dict(received)


def _stored(bootstrap: str, topic: str) -> int:
    """How many records the topic's partitions hold, by their offsets."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"t_offsets_{uuid.uuid4().hex[:12]}",
            "logger": logging.getLogger(f"{__name__}.consumer"),
        }
    )
    try:
        total = 0
        for partition in range(PARTITIONS):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10.0
            )
            total += high - low
        return total
    finally:
        consumer.close()
