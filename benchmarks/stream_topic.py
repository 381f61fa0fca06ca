"""The Kafka topic of a run on Kafka: made and removed, its backlog counted, its group watched.

Each run gets a topic and a consumer group of its own (``bench-<id>``, ``bench-ingest-<id>``),
so it shares nothing with a running deployment or another run; both are deleted at the end
unless the run is kept. The workers save their positions in the run's database, which goes
with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupState, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from benchmarks.sandbox import SandboxError
from fleetwatch.settings import KafkaSettings
from ingest.transports.kafka import CLIENT_LOG, ensure_topic

logger = logging.getLogger(__name__)

ADMIN_TIMEOUT_S = 30.0
GROUP_POLL_S = 0.2


class StreamTopicError(RuntimeError):
    """The run's topic could not be made, read or its consumer group did not settle."""


def _admin(settings: KafkaSettings) -> AdminClient:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "logger": CLIENT_LOG,
    }
    return AdminClient(config)


@contextmanager
def stream_topic(
    kafka: KafkaSettings, run_id: str, partitions: int, *, keep: bool
) -> Iterator[KafkaSettings]:
    """Create the run's topic with ``partitions``; the settings that name it and the run's
    consumer group. Topic and group are deleted on exit unless ``keep``."""
    settings = kafka.model_copy(
        update={
            "kafka_topic": f"bench-{run_id}",
            "kafka_group": f"bench-ingest-{run_id}",
            "kafka_partitions": partitions,
        }
    )
    try:  # the name is the run's own: whatever holds it is deleted at the end
        count = _created(settings)
        if count != partitions:
            raise SandboxError(f"Kafka topic {settings.kafka_topic} has {count} partitions")
        logger.info("Kafka topic %s created, %d partitions", settings.kafka_topic, count)
        yield settings
    finally:
        if keep:
            logger.info("kept Kafka topic %s", settings.kafka_topic)
        else:
            _delete(settings)


def _created(settings: KafkaSettings) -> int:
    """Create the topic; its partition count. The broker may answer that it does not know
    a topic for some tens of milliseconds after creating it (its metadata lags behind the
    controller's): asked again, it knows it."""
    deadline = time.monotonic() + ADMIN_TIMEOUT_S
    while True:
        try:
            return ensure_topic(settings, ADMIN_TIMEOUT_S)
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"cannot create Kafka topic {settings.kafka_topic}: {exc}"
                ) from exc
            logger.debug("topic %s not known yet: %s", settings.kafka_topic, exc)
        time.sleep(GROUP_POLL_S)


def _delete(settings: KafkaSettings) -> None:
    """Delete the run's consumer group and topic; a failure is logged."""
    admin = _admin(settings)
    group, topic = settings.kafka_group, settings.kafka_topic
    try:
        admin.delete_consumer_groups([group], request_timeout=ADMIN_TIMEOUT_S)[group].result()
    except KafkaException as exc:  # never joined (no worker ran), or Kafka is gone
        logger.debug("consumer group %s not deleted: %s", group, exc)
    try:
        admin.delete_topics([topic], operation_timeout=ADMIN_TIMEOUT_S)[topic].result()
    except KafkaException:
        logger.exception("could not delete Kafka topic %s; delete it by hand", topic)


@contextmanager
def _reader(settings: KafkaSettings) -> Iterator[Consumer]:
    """A consumer that only reads offsets: it never subscribes, so it joins no group."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "group.id": f"{settings.kafka_group}-offsets",
        "logger": CLIENT_LOG,
    }
    consumer = Consumer(config)
    try:
        yield consumer
    finally:
        consumer.close()


def _records(consumer: Consumer, settings: KafkaSettings) -> int:
    topic = settings.kafka_topic
    try:
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), ADMIN_TIMEOUT_S)[1]
            for p in range(settings.kafka_partitions)
        )
    except KafkaException as exc:
        raise StreamTopicError(f"cannot read the end offsets of {topic}: {exc}") from exc


def backlog(settings: KafkaSettings) -> int:
    """Records in the topic: the sum of its partitions' end offsets (nothing is deleted
    from a run's topic, so the start offsets are 0)."""
    with _reader(settings) as consumer:
        return _records(consumer, settings)


def await_backlog(settings: KafkaSettings, records: int, stall_timeout_s: float) -> int:
    """Wait until the topic holds ``records``; what it holds then (more if the broker
    redelivered to the bridge). Raises after ``stall_timeout_s`` without growth."""
    held, last_change = -1, time.monotonic()
    with _reader(settings) as consumer:
        while True:
            now = _records(consumer, settings)
            if now >= records:
                return now
            if now != held:
                held, last_change = now, time.monotonic()
            elif time.monotonic() - last_change > stall_timeout_s:
                raise StreamTopicError(
                    f"Kafka holds {now} of {records} records and nothing more came for "
                    f"{stall_timeout_s:.0f} s"
                )
            time.sleep(GROUP_POLL_S)


def await_group(settings: KafkaSettings, members: int, timeout_s: float) -> float:
    """Wait until the consumer group is stable with ``members`` members, each assigned some
    of the topic's partitions and all of them assigned; when that was seen (time.time())."""
    admin, group = _admin(settings), settings.kafka_group
    deadline = time.monotonic() + timeout_s
    seen = "not described yet"
    while time.monotonic() < deadline:
        try:
            found = admin.describe_consumer_groups([group], request_timeout=ADMIN_TIMEOUT_S)
            description = found[group].result()
        except KafkaException as exc:
            seen = str(exc)
        else:
            shares = [len(m.assignment.topic_partitions) for m in description.members]
            if (
                description.state == ConsumerGroupState.STABLE
                and len(shares) == members
                and all(shares)
                and sum(shares) == settings.kafka_partitions
            ):
                return time.time()
            seen = f"{description.state.name}, partitions per member {shares}"
        time.sleep(GROUP_POLL_S)
    raise StreamTopicError(
        f"consumer group {group} not stable with {members} members within "
        f"{timeout_s:.0f} s ({seen})"
    )
