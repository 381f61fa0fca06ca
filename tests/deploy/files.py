"""The deployment files the deploy tests read, and small parsers for them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
MOSQUITTO_DIR = ROOT / "deploy" / "mosquitto"
MOSQUITTO_CONF = MOSQUITTO_DIR / "mosquitto.conf"
MOSQUITTO_ACL = MOSQUITTO_DIR / "acl"
MOSQUITTO_PASSWORDS = MOSQUITTO_DIR / "passwords"
# The pom that scripts/services.sh fetches Kafka's jars with: the Kafka the tests run.
KAFKA_POM = ROOT / "scripts" / "kafka" / "pom.xml"

INGEST_USER = "fleetwatch-ingest"
SIMULATOR_USER = "fleetwatch-simulator"
DEVICE_USERS = ("ESG_ALARM_0001", "ESG_ALARM_0002", "ESG_ALARM_0003")
# The example device logins' demo password, documented in .env.example and README.
DEMO_DEVICE_PASSWORD = "demo-device-password"
# Which .env.example variable holds the demo password of each service login.
SERVICE_PASSWORD_VARIABLES = {
    INGEST_USER: "MQTT_INGEST_PASSWORD",
    SIMULATOR_USER: "MQTT_SIMULATOR_PASSWORD",
}

_ENV_LINE = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")
# mosquitto_passwd's format: $7$ = PBKDF2-HMAC-SHA512, then iterations, salt and hash.
_HASH = re.compile(
    r"^\$7\$(?P<iterations>[1-9][0-9]*)\$(?P<salt>[A-Za-z0-9+/=]+)\$(?P<hash>[A-Za-z0-9+/=]+)$"
)
SALT_BYTES = 12
HASH_BYTES = 64


def kafka_version(path: Path = KAFKA_POM) -> str:
    """The Kafka version the pom names (its ``kafka.version`` property)."""
    namespace = {"pom": "http://maven.apache.org/POM/4.0.0"}
    found = ET.parse(path).getroot().findtext("pom:properties/pom:kafka.version", None, namespace)
    if not found:
        raise ValueError(f"{path.name} names no kafka.version property")
    return found.strip()


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """``NAME=value`` lines of a compose ``.env`` file; comments and blank lines skipped."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _ENV_LINE.match(line)
        if match is None:
            raise ValueError(f"{path.name}:{number}: not NAME=value: {line!r}")
        if match["name"] in values:
            raise ValueError(f"{path.name}:{number}: {match['name']} defined twice")
        values[match["name"]] = match["value"]
    return values


@dataclass(frozen=True, slots=True)
class PasswordEntry:
    """One login of a Mosquitto password file."""

    username: str
    iterations: int
    salt: bytes
    digest: bytes

    def accepts(self, password: str) -> bool:
        """True when ``password`` is the one this entry was generated from."""
        derived = hashlib.pbkdf2_hmac(
            "sha512", password.encode(), self.salt, self.iterations, len(self.digest)
        )
        return derived == self.digest


def read_password_file(path: Path = MOSQUITTO_PASSWORDS) -> dict[str, PasswordEntry]:
    """The logins of a ``mosquitto_passwd`` file; ValueError names a malformed line."""
    entries: dict[str, PasswordEntry] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        where = f"{path.name}:{number}"
        username, sep, hashed = line.partition(":")
        match = _HASH.match(hashed)
        if not sep or not username or match is None:
            raise ValueError(f"{where}: not user:$7$iterations$salt$hash")
        if username in entries:
            raise ValueError(f"{where}: {username} listed twice")
        try:
            salt = base64.b64decode(match["salt"], validate=True)
            digest = base64.b64decode(match["hash"], validate=True)
        except binascii.Error as exc:
            raise ValueError(f"{where}: salt or hash is not base64") from exc
        if len(salt) != SALT_BYTES or len(digest) != HASH_BYTES:
            raise ValueError(f"{where}: {len(salt)}-byte salt, {len(digest)}-byte hash")
        entries[username] = PasswordEntry(username, int(match["iterations"]), salt, digest)
    return entries
