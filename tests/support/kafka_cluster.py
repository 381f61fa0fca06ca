"""A throwaway Apache Kafka cluster (KRaft) on free loopback ports, for the fault tests.

Every node is a broker and a controller at once, all nodes vote in the metadata quorum
(static voters), and internal topics keep a replica on up to three nodes, so a cluster of
three survives the loss of any one node. The nodes are JVMs run from the jars that
``scripts/services.sh kafka-libs`` fetches (or from ``FLEETWATCH_KAFKA_LIBS``); their data
and logs live in a directory of the cluster's own.

    with KafkaCluster(kafka_libs(), nodes=3) as cluster:
        cluster.create_topic("t_devices", partitions=6, replication_factor=3, min_insync=2)
        cluster.kill(2)      # SIGKILL, like a machine lost
        cluster.start(2)     # back with the data it had
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
SERVICES_SCRIPT = ROOT / "scripts" / "services.sh"
LOG4J_CONFIG = ROOT / "scripts" / "kafka" / "log4j2.properties"
LIBS_VARIABLE = "FLEETWATCH_KAFKA_LIBS"
HOW_TO_INSTALL = (
    "`scripts/services.sh kafka-libs` fetches Kafka's jars from Maven Central (it needs Java "
    f"17+ and Maven, which it installs on Debian) and prints their directory; set {LIBS_VARIABLE} "
    "to that directory to skip the check"
)
# Small heaps (three nodes share a small machine with the stores and the tests), the serial
# collector (no collector threads) and the C1 compiler only, which starts a node about a
# second sooner; a test cluster never runs long enough for C2 to pay off.
JAVA_OPTIONS = (
    "-Xms64m",
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
    f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
)
START_TIMEOUT_S = 60.0
FORMAT_TIMEOUT_S = 60.0
LOG_TAIL_LINES = 30


class KafkaClusterError(RuntimeError):
    """The cluster could not be installed, started or brought to the state asked for."""


@dataclass(frozen=True, slots=True)
class KafkaNode:
    """One broker+controller of the cluster: its id, ports and directory."""

    node_id: int
    broker_port: int
    controller_port: int
    directory: Path

    def __post_init__(self) -> None:
        if self.node_id < 1:
            raise ValueError(f"node ids start at 1, not {self.node_id}")

    @property
    def address(self) -> str:
        """Where clients reach this node's broker."""
        return f"127.0.0.1:{self.broker_port}"

    @property
    def data_dir(self) -> Path:
        """Its log directory (partitions and the metadata log)."""
        return self.directory / "data"

    @property
    def config_file(self) -> Path:
        """Its server.properties."""
        return self.directory / "server.properties"

    @property
    def log_file(self) -> Path:
        """Everything the node's JVM prints, across restarts."""
        return self.directory / "node.log"


def kafka_libs() -> Path:
    """The directory of Kafka's jars: ``FLEETWATCH_KAFKA_LIBS``, or what services.sh installs."""
    configured = os.environ.get(LIBS_VARIABLE)
    if configured:
        libs = Path(configured)
        if not any(libs.glob("kafka_2.13-*.jar")):
            raise KafkaClusterError(
                f"{LIBS_VARIABLE}={libs} holds no Kafka server jar; {HOW_TO_INSTALL}"
            )
        return libs
    try:
        done = subprocess.run(
            [str(SERVICES_SCRIPT), "kafka-libs"],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KafkaClusterError(f"could not run {SERVICES_SCRIPT.name} kafka-libs: {exc}") from exc
    printed = done.stdout.strip().splitlines()
    if done.returncode != 0 or not printed or not Path(printed[-1]).is_dir():
        raise KafkaClusterError(
            f"installing Kafka failed (exit {done.returncode}):\n{done.stderr.strip()}\n"
            f"{HOW_TO_INSTALL}"
        )
    return Path(printed[-1])


def _new_cluster_id() -> str:
    """A random cluster id as Kafka writes them: 16 bytes, URL-safe base64, unpadded."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):  # the storage tool would take it for an option
            return cluster_id


def _free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:  # all bound at once, so no port is handed out twice
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class KafkaCluster:
    """N combined broker+controller nodes on loopback; a context manager.

    Args:
        libs: the directory of Kafka's jars (see :func:`kafka_libs`).
        nodes: how many nodes; ids run from 1 to ``nodes``.
        directory: where the nodes keep data and logs; a temporary directory, removed by
            :meth:`stop`, when not given. A given directory is left in place with the logs
            (the data is removed).
    """

    def __init__(self, libs: Path, nodes: int = 3, *, directory: Path | None = None) -> None:
        if nodes < 1:
            raise ValueError(f"a cluster needs at least one node, not {nodes}")
        self._libs = libs
        self._own_directory = directory is None
        self._directory = directory or Path(tempfile.mkdtemp(prefix="fleetwatch-kafka-"))
        ports = _free_ports(2 * nodes)
        self.nodes: dict[int, KafkaNode] = {
            node_id: KafkaNode(
                node_id=node_id,
                broker_port=ports[2 * index],
                controller_port=ports[2 * index + 1],
                directory=self._directory / f"node-{node_id}",
            )
            for index, node_id in enumerate(range(1, nodes + 1))
        }
        # Internal topics keep a replica on up to three nodes and need all but one of them,
        # so that one node can be lost; one node alone must do with one replica.
        self.replication_factor = min(3, nodes)
        self.min_insync = max(1, self.replication_factor - 1)
        self._processes: dict[int, subprocess.Popen[bytes]] = {}
        self._logs: dict[int, IO[bytes]] = {}
        self._java_path = ""
        self._cluster_admin: AdminClient | None = None

    @property
    def bootstrap(self) -> str:
        """Every node's broker address, comma-separated, as clients want them."""
        return ",".join(node.address for node in self.nodes.values())

    def __enter__(self) -> Self:
        try:
            self.start_all()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- lifecycle ------------------------------------------------------------------------

    def start_all(self) -> None:
        """Format every node's storage, start them all and wait until each serves clients."""
        java = shutil.which("java")
        if java is None:
            raise KafkaClusterError(f"no `java` on PATH (Kafka needs Java 17+); {HOW_TO_INSTALL}")
        self._java_path = java
        cluster_id = _new_cluster_id()
        for node in self.nodes.values():
            node.directory.mkdir(parents=True, exist_ok=True)
            node.config_file.write_text(self._server_properties(node), encoding="utf-8")
        # One JVM per node: format them side by side.
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            formats = [
                pool.submit(self._run_tool, "format", "-t", cluster_id, "-c", str(node.config_file))
                for node in self.nodes.values()
            ]
            for future in formats:
                future.result()
        for node_id in self.nodes:
            self._spawn(node_id)
        self.wait_until_serving(self.nodes)

    def start(self, node_id: int) -> None:
        """Start a stopped or killed node again, with its data, and wait until it serves."""
        self._node(node_id)
        if self.is_running(node_id):
            raise KafkaClusterError(f"node {node_id} is already running")
        self._spawn(node_id)
        self.wait_until_serving([node_id])

    def kill(self, node_id: int) -> None:
        """SIGKILL one node, as a crash or a lost machine would stop it; returns once dead."""
        self._node(node_id)
        process = self._processes.get(node_id)
        if process is None or process.poll() is not None:
            raise KafkaClusterError(f"node {node_id} is not running")
        process.send_signal(signal.SIGKILL)
        process.wait()
        self._close_log(node_id)
        logger.info("Kafka node %d killed", node_id)

    def stop(self) -> None:
        """Kill every node and remove their data (and the directory, when it is the cluster's).

        The data is thrown away, so nothing is gained by a controlled shutdown, which would
        only wait for a quorum that is going away too.
        """
        for node_id, process in self._processes.items():
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait()
            self._close_log(node_id)
        self._processes.clear()
        if self._own_directory:
            shutil.rmtree(self._directory, ignore_errors=True)
        else:
            for node in self.nodes.values():
                shutil.rmtree(node.data_dir, ignore_errors=True)

    def heal(self) -> None:
        """Start every node that is down, then wait until every partition is fully replicated."""
        down = [node_id for node_id in self.nodes if not self.is_running(node_id)]
        for node_id in down:
            self._spawn(node_id)
        self.wait_until_serving(down)
        self.wait_until_in_sync()

    def is_running(self, node_id: int) -> bool:
        """True while the node's process lives (which is not yet to say it serves)."""
        process = self._processes.get(node_id)
        return process is not None and process.poll() is None

    def running(self) -> list[int]:
        """The ids of the nodes whose processes live."""
        return [node_id for node_id in self.nodes if self.is_running(node_id)]

    # --- waiting --------------------------------------------------------------------------

    def wait_until_serving(
        self, node_ids: Iterable[int], timeout_s: float = START_TIMEOUT_S
    ) -> None:
        """Wait until each node answers a metadata request itself.

        A broker handles requests only once it has caught up with the metadata quorum and
        the controller has unfenced it, so an answer from the node itself (not a stale
        entry in another node's metadata) says it is fully back. Each attempt uses a new
        client that knows only that node, so the answer cannot come from another one.
        """
        waited = list(node_ids)
        deadline = time.monotonic() + timeout_s
        for node_id in waited:
            node = self._node(node_id)
            while True:
                self._check_alive(node_id)
                try:
                    metadata = self._admin(node.address).list_topics(timeout=2.0)
                except KafkaException:
                    metadata = None
                if metadata is not None and node_id in metadata.brokers:
                    break
                if time.monotonic() > deadline:
                    raise KafkaClusterError(
                        f"Kafka node {node_id} did not serve within {timeout_s:.0f}s; its log "
                        f"({node.log_file}) ends:\n{_tail(node.log_file)}"
                    )
                time.sleep(0.2)
        if waited:
            logger.info("Kafka nodes %s serve on %s", waited, self.bootstrap)

    def wait_until_in_sync(
        self, topics: Iterable[str] | None = None, timeout_s: float = START_TIMEOUT_S
    ) -> None:
        """Wait until every partition (of ``topics``, or of all topics) has a leader and
        every replica in its in-sync set."""
        wanted = None if topics is None else list(topics)
        admin = self._admin()
        deadline = time.monotonic() + timeout_s
        lagging = ["no metadata"]
        while time.monotonic() < deadline:
            try:
                metadata = admin.list_topics(timeout=2.0)
            except KafkaException as exc:
                lagging = [str(exc)]
            else:
                lagging = []
                for name in wanted if wanted is not None else list(metadata.topics):
                    topic = metadata.topics.get(name)
                    if topic is None or topic.error is not None:
                        lagging.append(f"{name}: not known yet")
                        continue
                    lagging += [
                        f"{name}[{part.id}] leader {part.leader} isr {part.isrs} of {part.replicas}"
                        for part in topic.partitions.values()
                        if part.leader < 0 or set(part.isrs) != set(part.replicas)
                    ]
                if not lagging:
                    return
            time.sleep(0.2)
        raise KafkaClusterError(
            f"not every replica in sync within {timeout_s:.0f}s: {lagging[:10]}"
        )

    # --- topics ---------------------------------------------------------------------------

    def create_topic(
        self,
        name: str,
        *,
        partitions: int,
        replication_factor: int | None = None,
        min_insync: int | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        """Create a topic and wait until each partition has a leader and a full in-sync set.

        Replication and ``min.insync.replicas`` default to those of the internal topics.
        """
        replicas = replication_factor or self.replication_factor
        config = {"min.insync.replicas": str(min_insync or self.min_insync)}
        admin = self._admin()
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=replicas, config=config)],
            request_timeout=timeout_s,
        )
        try:
            futures[name].result(timeout=timeout_s)
        except KafkaException as exc:
            raise KafkaClusterError(f"could not create topic {name}: {exc}") from exc
        self.wait_until_in_sync([name], timeout_s)

    def partition_leaders(self, topic: str) -> dict[int, int]:
        """Partition id -> id of the node leading it (-1 while none does)."""
        metadata = self._admin().list_topics(topic, timeout=10.0)
        return {pid: part.leader for pid, part in metadata.topics[topic].partitions.items()}

    # --- internals ------------------------------------------------------------------------

    def _node(self, node_id: int) -> KafkaNode:
        try:
            return self.nodes[node_id]
        except KeyError:
            raise KafkaClusterError(f"no node {node_id}; nodes are {sorted(self.nodes)}") from None

    def _server_properties(self, node: KafkaNode) -> str:
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes.values())
        settings: dict[str, object] = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{node.broker_port},"
                f"CONTROLLER://127.0.0.1:{node.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://{node.address}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": node.data_dir,
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": self.replication_factor,
            "transaction.state.log.replication.factor": self.replication_factor,
            "share.coordinator.state.topic.replication.factor": self.replication_factor,
            "transaction.state.log.min.isr": self.min_insync,
            "share.coordinator.state.topic.min.isr": self.min_insync,
            "min.insync.replicas": self.min_insync,
            # Few coordinator partitions: created in a blink, and plenty for a test's groups.
            "offsets.topic.num.partitions": 6,
            "transaction.state.log.num.partitions": 6,
            "group.initial.rebalance.delay.ms": 0,
            # Quick failover: the controller fences a node that missed 3 s of heartbeats
            # (default 9 s), which moves its leaderships and drops it from in-sync sets, so
            # acks=all writes to its partitions resume that much sooner.
            "broker.heartbeat.interval.ms": 500,
            "broker.session.timeout.ms": 3000,
            # Fewer threads than a production broker; three nodes share two cores here.
            "num.network.threads": 2,
            "num.io.threads": 2,
            "background.threads": 2,
            "num.recovery.threads.per.data.dir": 1,
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _java(self, main: str, *args: str) -> list[str]:
        options = list(JAVA_OPTIONS)
        # The class archive services.sh makes beside the jars, when there is one: it
        # halves a node's start. A JVM it does not fit warns and starts without it.
        archive = self._libs.parent / "kafka.jsa"
        if archive.is_file():
            options.append(f"-XX:SharedArchiveFile={archive}")
        return [self._java_path, *options, "-cp", f"{self._libs}/*", main, *args]

    def _run_tool(self, *args: str) -> str:
        command = self._java("kafka.tools.StorageTool", *args)
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=FORMAT_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise KafkaClusterError(f"kafka-storage {args[0]} timed out") from exc
        if done.returncode != 0:
            raise KafkaClusterError(
                f"kafka-storage {args[0]} failed (exit {done.returncode}):\n"
                f"{done.stdout.strip()}\n{done.stderr.strip()}\n{HOW_TO_INSTALL}"
            )
        return done.stdout

    def _spawn(self, node_id: int) -> None:
        node = self._node(node_id)
        log = node.log_file.open("ab")
        self._logs[node_id] = log
        self._processes[node_id] = subprocess.Popen(
            self._java("kafka.Kafka", str(node.config_file)),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group: a Ctrl-C meant for pytest does not reach the nodes
            # before the fixtures' teardown stops them.
            start_new_session=True,
        )

    def _check_alive(self, node_id: int) -> None:
        process = self._processes.get(node_id)
        if process is not None and process.poll() is None:
            return
        node = self.nodes[node_id]
        code = None if process is None else process.returncode
        raise KafkaClusterError(
            f"Kafka node {node_id} is not running (exit {code}); its log ({node.log_file}) "
            f"ends:\n{_tail(node.log_file)}"
        )

    def _close_log(self, node_id: int) -> None:
        log = self._logs.pop(node_id, None)
        if log is not None:
            log.close()

    def _admin(self, bootstrap: str | None = None) -> AdminClient:
        """A client of one node, or (kept for reuse) of the whole cluster."""
        if bootstrap is None:
            if self._cluster_admin is None:
                self._cluster_admin = _admin_client(self.bootstrap)
            return self._cluster_admin
        return _admin_client(bootstrap)


def _admin_client(bootstrap: str) -> AdminClient:
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        # Nodes come and go in these tests: retry a refused connection soon, not after
        # librdkafka's backoff has grown to 10 s.
        "reconnect.backoff.max.ms": 500,
        "logger": logging.getLogger(f"{__name__}.librdkafka"),
    }
    return AdminClient(config)
