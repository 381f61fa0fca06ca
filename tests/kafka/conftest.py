"""Kafka for the scale-out tests: the local single node, and a three-node cluster to break.

``kafka_service`` is the node ``scripts/services.sh`` runs (``FLEETWATCH_KAFKA_BOOTSTRAP_SERVERS``).
``kafka_cluster`` is a cluster of this session's own whose nodes the fault tests kill and
restart; every test that uses it starts with all three nodes up and every partition fully
replicated. Neither is ever skipped: when Kafka cannot run, the tests fail and say how to
start it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from tests.conftest import unique_name
from tests.ingest.conftest import db, migrated_pg  # noqa: F401 - the stores' fixtures, shared
from tests.support.kafka_cluster import KafkaCluster, KafkaClusterError, kafka_libs

CLUSTER_NODES = 3
BOOTSTRAP_VARIABLE = "FLEETWATCH_KAFKA_BOOTSTRAP_SERVERS"
HOW_TO_START = (
    "start the local services with `scripts/services.sh up` (it installs Kafka from Maven "
    'Central) and export their settings with `eval "$(scripts/services.sh env)"`'
)


@pytest.fixture(scope="session")
def kafka_service() -> str:
    """The bootstrap address of the local Kafka node, once it answers."""
    bootstrap = os.environ.get(BOOTSTRAP_VARIABLE)
    if not bootstrap:
        pytest.fail(f"{BOOTSTRAP_VARIABLE} is not set; {HOW_TO_START}", pytrace=False)
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "logger": logging.getLogger(f"{__name__}.librdkafka"),
    }
    admin = AdminClient(config)
    try:
        admin.list_topics(timeout=10)
    except KafkaException as exc:
        pytest.fail(
            f"Kafka at {bootstrap} ({BOOTSTRAP_VARIABLE}) does not answer: {exc}; {HOW_TO_START}",
            pytrace=False,
        )
    return bootstrap


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """Three broker+controller nodes on free loopback ports, for this session only.

    Topics and internal topics keep three replicas and need two, so a test may kill any
    one node (``kill``) and bring it back (``start``).
    """
    try:
        libs = kafka_libs()
    except KafkaClusterError as exc:
        pytest.fail(f"Kafka is not installed: {exc}", pytrace=False)
    cluster = KafkaCluster(libs, CLUSTER_NODES, directory=tmp_path_factory.mktemp("kafka"))
    try:
        cluster.start_all()
    except KafkaClusterError as exc:
        cluster.stop()
        pytest.fail(f"the tests' Kafka cluster did not start: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(autouse=True)
def _kafka_cluster_whole(request: pytest.FixtureRequest) -> None:
    """A test that uses the cluster gets it with every node up and every replica in sync,
    whatever the test before did to it."""
    if "kafka_cluster" in request.fixturenames:
        cluster: KafkaCluster = request.getfixturevalue("kafka_cluster")
        try:
            cluster.heal()
        except KafkaClusterError as exc:
            pytest.fail(f"the tests' Kafka cluster could not be made whole: {exc}", pytrace=False)


@pytest.fixture
def kafka_topic() -> str:
    """A topic name no other test uses (the topic itself is not created)."""
    return unique_name("topic")
