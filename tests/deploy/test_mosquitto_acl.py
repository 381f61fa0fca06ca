"""The committed Mosquitto ACL and passwords, proven on a real broker.

A throwaway mosquitto runs deploy/mosquitto's ``acl`` and ``passwords`` with a copy of its
``mosquitto.conf`` whose listeners sit on free loopback ports and whose paths point into a
temporary directory. Clients speak MQTT 5, so a refused publish comes back as a PUBACK
"not authorised". What a client may read is proven by delivery order: the forbidden message
is published first and the allowed one after it, each acknowledged before the next, so once
the allowed one has arrived the forbidden one can no longer be on its way.
"""

from __future__ import annotations

import os
import pwd
import queue
import shutil
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ingest.contract.topics import DEVICE_TO_SERVER, TopicKind, TopicScheme
from tests.deploy.files import (
    DEMO_DEVICE_PASSWORD,
    INGEST_USER,
    MOSQUITTO_CONF,
    MOSQUITTO_DIR,
    SERVICE_PASSWORD_VARIABLES,
    SIMULATOR_USER,
    read_env_file,
)

WAIT_S = 5.0
NOT_AUTHORIZED = 135
DEVICE, OTHER_DEVICE = "ESG_ALARM_0001", "ESG_ALARM_0002"
UNREGISTERED_HOSTNAME = "ESG_ALARM_0150"  # simulated, has no login of its own
TOPICS = TopicScheme()  # the default prefix, which the ACL names

Message = tuple[str, bytes]


@dataclass(frozen=True, slots=True)
class Broker:
    """A running throwaway mosquitto."""

    port: int
    """The password listener devices and services use."""
    health_port: int
    """The anonymous loopback listener of the container's health check."""
    log: list[str]


def _find_mosquitto() -> str:
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/usr/local/sbin"
    found = shutil.which("mosquitto", path=path)
    if found is None:
        pytest.fail(
            "the mosquitto broker binary is not installed; `scripts/services.sh up` installs "
            "it (Debian package mosquitto)",
            pytrace=False,
        )
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _relocate(path: str, directory: Path) -> str:
    """A container path of mosquitto.conf, mapped into ``directory`` (files copied there)."""
    if path.startswith("/mosquitto/config/"):
        name = path.removeprefix("/mosquitto/config/")
        shutil.copy(MOSQUITTO_DIR / name, directory / name)
        return str(directory / name)
    if path.rstrip("/") == "/mosquitto/data":
        (directory / "data").mkdir(exist_ok=True)
        return f"{directory / 'data'}/"
    pytest.fail(f"mosquitto.conf names {path}, outside /mosquitto/config and /mosquitto/data")


def _test_conf(directory: Path) -> tuple[str, int, int]:
    """The deploy mosquitto.conf on free loopback ports, with its files in ``directory``.

    Returns the configuration and the ports of the password and the anonymous listener.
    """
    lines: list[str] = []
    anonymous: dict[int, bool] = {}  # listener port -> allows anonymous clients
    port = 0
    for line in MOSQUITTO_CONF.read_text(encoding="utf-8").splitlines():
        words = line.split()
        key = words[0] if words else ""
        if key == "listener":
            port = _free_port()
            anonymous[port] = False
            lines.append(f"listener {port} 127.0.0.1")
        elif key == "allow_anonymous":
            assert port, "allow_anonymous outside a listener: mosquitto.conf changed shape"
            anonymous[port] = words[1] == "true"
            lines.append(line)
        elif key in ("password_file", "acl_file", "persistence_location"):
            lines.append(f"{key} {_relocate(words[1], directory)}")
        elif key == "log_dest":
            lines.append("log_dest stderr")  # unbuffered, so "running" is seen at once
        else:
            lines.append(line)
    lines += ["log_type all", f"user {pwd.getpwuid(os.geteuid()).pw_name}"]
    by_password = [port for port, anon in anonymous.items() if not anon]
    by_anonymous = [port for port, anon in anonymous.items() if anon]
    assert len(by_password) == 1, "mosquitto.conf should have one password listener"
    assert len(by_anonymous) == 1, "mosquitto.conf should have one anonymous health listener"
    return "\n".join(lines) + "\n", by_password[0], by_anonymous[0]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """Mosquitto with the deploy configuration, on free loopback ports."""
    binary = _find_mosquitto()
    directory = tmp_path_factory.mktemp("mosquitto")
    conf, port, health_port = _test_conf(directory)
    (directory / "mosquitto.conf").write_text(conf, encoding="utf-8")
    process = subprocess.Popen(
        [binary, "-c", str(directory / "mosquitto.conf")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log: list[str] = []
    settled = threading.Event()

    def read_log() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            log.append(line.rstrip())
            if " running" in line:
                settled.set()
        settled.set()  # the broker exited

    reader = threading.Thread(target=read_log, name="mosquitto-log", daemon=True)
    reader.start()
    try:
        started = settled.wait(WAIT_S) and process.poll() is None
        if not started:
            pytest.fail("mosquitto did not start:\n" + "\n".join(log), pytrace=False)
        yield Broker(port, health_port, log)
    finally:
        process.terminate()
        process.wait(timeout=WAIT_S)
        reader.join(timeout=WAIT_S)
        if process.stdout is not None:
            process.stdout.close()


class Client:
    """A paho MQTT 5 client whose every wait is an event with a timeout."""

    def __init__(self, port: int, username: str | None, password: str | None) -> None:
        self.port = port
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"acl-test-{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv5,
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        self._connack: queue.Queue[ReasonCode] = queue.Queue()
        self._subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self._pubacks: dict[int, ReasonCode] = {}
        self._puback = threading.Condition()
        self.messages: queue.Queue[Message] = queue.Queue()
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message

    def _on_connect(
        self,
        _c: mqtt.Client,
        _u: object,
        _f: mqtt.ConnectFlags,
        reason: ReasonCode,
        _p: Properties | None,
    ) -> None:
        self._connack.put(reason)

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, _m: int, reasons: list[ReasonCode], _p: Properties
    ) -> None:
        self._subacks.put(reasons)

    def _on_publish(
        self, _c: mqtt.Client, _u: object, mid: int, reason: ReasonCode, _p: Properties
    ) -> None:
        with self._puback:
            self._pubacks[mid] = reason
            self._puback.notify_all()

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        self.messages.put((message.topic, message.payload))

    def connect(self) -> ReasonCode:
        """Log in; the CONNACK's reason code."""
        self._client.connect("127.0.0.1", self.port)
        self._client.loop_start()
        try:
            return self._connack.get(timeout=WAIT_S)
        except queue.Empty:
            pytest.fail(f"no CONNACK within {WAIT_S}s")

    def close(self) -> None:
        """Log out, stop the network thread and close its sockets (paho leaves the wake-up
        socket pair of ``loop_start`` to the garbage collector, which warns about it)."""
        self._client.disconnect()
        self._client.loop_stop()
        self._client._reset_sockets()  # no public way to close them

    def subscribe(self, topic: str) -> None:
        """Subscribe at QoS 1 and wait for the SUBACK."""
        self._client.subscribe(topic, qos=1)
        try:
            (reason,) = self._subacks.get(timeout=WAIT_S)
        except queue.Empty:
            pytest.fail(f"no SUBACK for {topic} within {WAIT_S}s")
        assert not reason.is_failure, f"subscription to {topic} refused: {reason}"

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        """Publish at QoS 1; the PUBACK's reason code."""
        mid = self._client.publish(topic, payload, qos=1).mid
        with self._puback:
            if not self._puback.wait_for(lambda: mid in self._pubacks, timeout=WAIT_S):
                pytest.fail(f"no PUBACK for {topic} within {WAIT_S}s")
            return self._pubacks.pop(mid)

    def until(self, topic: str, payload: bytes) -> list[Message]:
        """Wait for the message ``(topic, payload)``; what arrived before it."""
        before: list[Message] = []
        while True:
            try:
                message = self.messages.get(timeout=WAIT_S)
            except queue.Empty:
                pytest.fail(f"{topic} never arrived; before it: {before}")
            if message == (topic, payload):
                return before
            before.append(message)


@contextmanager
def logged_in(port: int, username: str | None, password: str | None) -> Iterator[Client]:
    """A client logged in to ``port``, logged out afterwards."""
    client = Client(port, username, password)
    reason = client.connect()
    try:
        assert not reason.is_failure, f"login of {username} refused: {reason}"
        yield client
    finally:
        client.close()


def login_reason(port: int, username: str | None, password: str | None) -> ReasonCode:
    """The CONNACK reason code a login attempt gets."""
    client = Client(port, username, password)
    try:
        return client.connect()
    finally:
        client.close()


def device(broker: Broker, hostname: str = DEVICE) -> AbstractContextManager[Client]:
    """A demo device logged in with its hostname."""
    return logged_in(broker.port, hostname, DEMO_DEVICE_PASSWORD)


def service(broker: Broker, username: str) -> AbstractContextManager[Client]:
    """A fleetwatch service logged in with its demo password from .env.example."""
    password = read_env_file()[SERVICE_PASSWORD_VARIABLES[username]]
    return logged_in(broker.port, username, password)


def payload() -> bytes:
    """A payload no other message of the run carries."""
    return uuid.uuid4().bytes


def test_device_publishes_every_kind_under_its_own_hostname(broker: Broker) -> None:
    """A device may publish each device-to-server kind under its hostname; ingest gets it."""
    with service(broker, INGEST_USER) as ingest, device(broker) as panel:
        ingest.subscribe(TOPICS.subscription())
        for kind in sorted(DEVICE_TO_SERVER):
            topic, body = TOPICS.topic(DEVICE, kind), payload()
            reason = panel.publish(topic, body)
            assert not reason.is_failure, f"{DEVICE} may not publish {topic}: {reason}"
            assert ingest.until(topic, body) == []


def test_device_cannot_publish_for_another_device_or_send_commands(broker: Broker) -> None:
    """A device's publish under another hostname, or on a command topic, is refused."""
    with service(broker, INGEST_USER) as ingest, device(broker) as panel:
        ingest.subscribe(TOPICS.subscription())
        forbidden = [
            TOPICS.topic(OTHER_DEVICE, TopicKind.HEARTBEAT),
            TOPICS.topic(OTHER_DEVICE, TopicKind.STATUS),
            TOPICS.topic(DEVICE, TopicKind.COMMAND),
            TOPICS.topic(OTHER_DEVICE, TopicKind.COMMAND),
            f"{TOPICS.prefix}/{DEVICE}/other",
            f"elsewhere/{DEVICE}/heartbeat",
        ]
        for topic in forbidden:
            assert panel.publish(topic, payload()).value == NOT_AUTHORIZED, topic
        allowed, body = TOPICS.topic(DEVICE, TopicKind.HEARTBEAT), payload()
        assert not panel.publish(allowed, body).is_failure
        assert ingest.until(allowed, body) == [], "a refused publish reached ingest"


def test_device_reads_only_its_own_command_topic(broker: Broker) -> None:
    """A device subscribed to the whole tree receives its own commands and nothing else."""
    with (
        service(broker, INGEST_USER) as ingest,
        device(broker) as panel,
        device(broker, OTHER_DEVICE) as other,
    ):
        panel.subscribe("#")
        for client, topic in (
            (other, TOPICS.topic(OTHER_DEVICE, TopicKind.HEARTBEAT)),
            (ingest, TOPICS.topic(OTHER_DEVICE, TopicKind.COMMAND)),
        ):
            assert not client.publish(topic, payload()).is_failure, topic
        own, body = TOPICS.topic(DEVICE, TopicKind.COMMAND), payload()
        assert not ingest.publish(own, body).is_failure
        assert panel.until(own, body) == [], f"{DEVICE} read another device's messages"


def test_ingest_reads_everything_the_fleet_sends(broker: Broker) -> None:
    """Ingest receives what every device and the simulator publish."""
    with (
        service(broker, INGEST_USER) as ingest,
        device(broker) as panel,
        device(broker, OTHER_DEVICE) as other,
        service(broker, SIMULATOR_USER) as simulator,
    ):
        ingest.subscribe(TOPICS.subscription())
        for client, hostname in (
            (panel, DEVICE),
            (other, OTHER_DEVICE),
            (simulator, UNREGISTERED_HOSTNAME),
        ):
            topic, body = TOPICS.topic(hostname, TopicKind.ALARM), payload()
            assert not client.publish(topic, body).is_failure, topic
            assert ingest.until(topic, body) == []


def test_simulator_publishes_for_any_device_and_reads_every_command(broker: Broker) -> None:
    """The simulator publishes for any hostname and reads all commands, not the fleet's data."""
    with (
        service(broker, INGEST_USER) as ingest,
        device(broker, OTHER_DEVICE) as other,
        service(broker, SIMULATOR_USER) as simulator,
    ):
        simulator.subscribe(TOPICS.subscription())
        for kind in sorted(DEVICE_TO_SERVER):
            topic = TOPICS.topic(UNREGISTERED_HOSTNAME, kind)
            assert not simulator.publish(topic, payload()).is_failure, topic
        command = TOPICS.topic(UNREGISTERED_HOSTNAME, TopicKind.COMMAND)
        assert simulator.publish(command, payload()).value == NOT_AUTHORIZED
        heartbeat = TOPICS.topic(OTHER_DEVICE, TopicKind.HEARTBEAT)
        assert not other.publish(heartbeat, payload()).is_failure
        for hostname in (DEVICE, UNREGISTERED_HOSTNAME):
            topic, body = TOPICS.topic(hostname, TopicKind.COMMAND), payload()
            assert not ingest.publish(topic, body).is_failure
            assert simulator.until(topic, body) == [], "the simulator read non-command data"


def test_device_listener_requires_a_valid_login(broker: Broker) -> None:
    """Anonymous clients, wrong passwords and unknown users are refused at CONNECT."""
    for username, password in (
        (None, None),
        (DEVICE, "wrong-password"),
        ("ESG_ALARM_9999", DEMO_DEVICE_PASSWORD),
    ):
        reason = login_reason(broker.port, username, password)
        assert reason.is_failure, f"login of {username!r} accepted"


def test_health_listener_lets_anonymous_read_only_the_broker_version(broker: Broker) -> None:
    """The health-check listener serves $SYS/broker/version to anonymous clients, no more."""
    with logged_in(broker.health_port, None, None) as probe:
        probe.subscribe("$SYS/broker/version")
        topic, version = probe.messages.get(timeout=WAIT_S)
        assert topic == "$SYS/broker/version"
        assert version.startswith(b"mosquitto version")
        heartbeat = TOPICS.topic(DEVICE, TopicKind.HEARTBEAT)
        assert probe.publish(heartbeat, payload()).value == NOT_AUTHORIZED
