"""What can be checked of the container setup without a Docker engine.

compose.yaml, the Dockerfile, .dockerignore, .env.example and the Mosquitto files are read
and checked against what fleetwatch reads, what the tests run against and each other.
"""

from __future__ import annotations

import base64
import json
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from fleetwatch.settings import SETTINGS_GROUPS, MqttSettings
from tests import services as test_services
from tests.deploy.files import (
    COMPOSE_FILE,
    DEMO_DEVICE_PASSWORD,
    DEVICE_USERS,
    DOCKERFILE,
    DOCKERIGNORE,
    ENV_EXAMPLE,
    INGEST_USER,
    MOSQUITTO_ACL,
    MOSQUITTO_CONF,
    MOSQUITTO_DIR,
    ROOT,
    SERVICE_PASSWORD_VARIABLES,
    SIMULATOR_USER,
    kafka_version,
    read_env_file,
    read_password_file,
)

SERVICES = {
    "postgres", "influxdb", "mosquitto", "migrate", "ingest", "notify", "api", "dashboard",
    "simulator", "kafka", "bridge", "ingest-worker",
}  # fmt: skip
ONE_SHOT = {"migrate"}
# The services of the scaled-out deployment, which take the single ingest's place.
SCALE_PROFILE = {"kafka", "bridge", "ingest-worker"}
# The variables each official image reads (its documentation), by service.
OFFICIAL_IMAGE_ENV = {
    "postgres": ("POSTGRES_",),
    "influxdb": ("DOCKER_INFLUXDB_INIT_", "INFLUXD_"),
    "mosquitto": (),
    "kafka": ("KAFKA_", "CLUSTER_ID"),
}
# The images the test suite runs against (tests/services.py), by service; for Kafka the
# official image of the version the tests fetch from Maven Central (scripts/kafka/pom.xml).
TESTED_IMAGES = {
    "postgres": test_services.POSTGRES_IMAGE,
    "influxdb": test_services.INFLUXDB_IMAGE,
    "mosquitto": test_services.MOSQUITTO_IMAGE,
    "kafka": f"apache/kafka:{kafka_version()}",
}
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET")
# A *_FILE setting names where a secret is kept (a path in a volume), not the secret itself.
SECRET_FILE_NAME = re.compile(r"_FILE$")
# Which .env variable holds the password of each database URL setting.
DATABASE_PASSWORD_VARIABLES = {
    "FLEETWATCH_DATABASE_URL": "POSTGRES_PASSWORD",
    "FLEETWATCH_DASHBOARD_DATABASE_URL": "DASHBOARD_POSTGRES_PASSWORD",
    "FLEETWATCH_DASHBOARD_ACTIONS_DATABASE_URL": "ACTIONS_POSTGRES_PASSWORD",
}
# The settings that hand the service's own credentials out; the dashboard never gets them.
SERVICE_CREDENTIALS = ("FLEETWATCH_DATABASE_URL", "FLEETWATCH_INFLUX_TOKEN")
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, $NAME; not $$.
INTERPOLATION = re.compile(
    r"(?<!\$)\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


@dataclass(frozen=True, slots=True)
class Interpolation:
    """One ``${...}`` of compose.yaml."""

    name: str
    operator: str  # "" (plain), ":-"/"-" (default), ":?"/"?" (required), ":+"/"+"
    argument: str

    @property
    def has_default(self) -> bool:
        """True when compose substitutes something harmless if the variable is unset."""
        return self.operator in (":-", "-")


def _interpolations(value: str) -> list[Interpolation]:
    found = []
    for match in INTERPOLATION.finditer(value):
        if match["bare"]:
            found.append(Interpolation(match["bare"], "", ""))
        else:
            found.append(Interpolation(match["braced"], match["op"] or "", match["arg"]))
    return found


def _strings(node: object) -> Iterator[str]:
    """Every string value (and mapping key) in a parsed YAML document."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def _resolve(value: str, env: dict[str, str]) -> str:
    """``value`` as compose interpolates it with ``env`` (``$$`` left as ``$``)."""

    def substitute(match: re.Match[str]) -> str:
        name = match["bare"] or match["braced"]
        operator = match["op"] or ""
        if name in env and (env[name] or ":" not in operator):
            return env[name]
        if operator in (":-", "-"):
            return str(match["arg"])
        raise AssertionError(f"compose would fail: {name} unset in {value!r}")

    return INTERPOLATION.sub(substitute, value).replace("$$", "$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """compose.yaml, parsed (anchors and merge keys resolved)."""
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict), "compose.yaml is not a mapping"
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """compose.yaml's services by name."""
    found = compose.get("services")
    assert isinstance(found, dict), "compose.yaml has no services"
    return found


def _fleetwatch_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services running the fleetwatch image (the ones compose builds)."""
    return {name: spec for name, spec in services.items() if "build" in spec}


def _environment(spec: dict[str, Any]) -> dict[str, str]:
    env = spec.get("environment", {})
    assert isinstance(env, dict), "environment should be a mapping (NAME: value)"
    return {str(key): str(value) for key, value in env.items()}


def _settings_read_by_fleetwatch() -> set[str]:
    names = set()
    for group in SETTINGS_GROUPS:
        prefix = str(group.model_config.get("env_prefix", ""))
        names |= {f"{prefix}{field}".upper() for field in group.model_fields}
    return names


def test_compose_file_has_the_expected_services(services: dict[str, dict[str, Any]]) -> None:
    """compose.yaml parses and names every service; the simulator needs the demo profile,
    the scaled-out services the scale profile, and nothing else a profile."""
    assert set(services) == SERVICES
    assert set(_fleetwatch_services(services)) == {
        "migrate", "ingest", "notify", "api", "dashboard", "simulator", "bridge", "ingest-worker",
    }  # fmt: skip
    profiles = {name: spec.get("profiles") for name, spec in services.items()}
    assert profiles.pop("simulator") == ["demo"]
    for name in SCALE_PROFILE:
        assert profiles.pop(name) == ["scale"], f"{name} belongs to the scale profile"
    assert set(profiles.values()) == {None}, "only the demo and scale services need a profile"
    commands = {name: spec["command"][0] for name, spec in _fleetwatch_services(services).items()}
    assert commands == {
        "migrate": "migrate",
        "ingest": "ingest",
        "notify": "notify",
        "api": "api",
        "dashboard": "dashboard",
        "simulator": "simulate",
        "bridge": "bridge",
        "ingest-worker": "ingest",
    }


def test_fleetwatch_services_set_only_settings_fleetwatch_reads(
    services: dict[str, dict[str, Any]],
) -> None:
    """Every environment name of a fleetwatch service is a FLEETWATCH_* setting it reads."""
    known = _settings_read_by_fleetwatch()
    assert "FLEETWATCH_MQTT_PASSWORD" in known, "settings groups no longer found"
    unknown = {
        name: sorted(set(_environment(spec)) - known)
        for name, spec in _fleetwatch_services(services).items()
    }
    assert not any(unknown.values()), f"not read by fleetwatch: {unknown}"


def test_official_images_get_only_their_documented_variables(
    services: dict[str, dict[str, Any]],
) -> None:
    """postgres, influxdb and mosquitto receive only variables their images read."""
    for name, prefixes in OFFICIAL_IMAGE_ENV.items():
        foreign = [key for key in _environment(services[name]) if not key.startswith(prefixes)]
        assert not foreign, f"{name}: {foreign} are not read by its image"


def test_mqtt_clients_log_in_with_their_own_demo_user(services: dict[str, dict[str, Any]]) -> None:
    """Ingest (with its scaled-out halves, bridge and workers) and simulator log in as their
    own users, whose .env.example passwords match."""
    logins = read_password_file()
    env = read_env_file()
    expected = {
        "ingest": INGEST_USER,
        "bridge": INGEST_USER,
        "ingest-worker": INGEST_USER,
        "simulator": SIMULATOR_USER,
    }
    for name, spec in _fleetwatch_services(services).items():
        environment = _environment(spec)
        if "FLEETWATCH_MQTT_HOST" not in environment:
            assert name not in expected, f"{name} does not reach the broker"
            continue
        username = environment["FLEETWATCH_MQTT_USERNAME"]
        assert username == expected[name], f"{name} logs in as {username}"
        (password,) = _interpolations(environment["FLEETWATCH_MQTT_PASSWORD"])
        assert password.name == SERVICE_PASSWORD_VARIABLES[username]
        assert logins[username].accepts(env[password.name]), (
            f"{password.name} in .env.example is not {username}'s password in "
            f"deploy/mosquitto/passwords"
        )


def test_every_image_tag_is_pinned(services: dict[str, dict[str, Any]]) -> None:
    """Every image names an exact tag (never latest); the stores are those the tests use."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "version"
    ]
    for name, spec in services.items():
        image = spec.get("image")
        assert isinstance(image, str), f"{name} has no image"
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: {image} has no tag"
        assert "/" not in tag, f"{name}: {image} has no tag"
        assert re.fullmatch(r"\d+\.\d+[\w.-]*", tag), f"{name}: {image} is not an exact version"
        if "build" in spec:
            assert image == f"fleetwatch:{version}", f"{name}: tag the image with the version"
        else:
            assert image == TESTED_IMAGES[name], f"{name}: the tests run {TESTED_IMAGES[name]}"


def test_depends_on_targets_exist_and_wait_on_a_condition(
    services: dict[str, dict[str, Any]],
) -> None:
    """Every depends_on names a service and waits for it to be healthy or to have finished."""
    for name, spec in services.items():
        depends_on = spec.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions"
        for target, rule in depends_on.items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = rule.get("condition") if isinstance(rule, dict) else None
            if target in ONE_SHOT:
                assert condition == "service_completed_successfully", f"{name} -> {target}"
            else:
                assert condition == "service_healthy", f"{name} -> {target}"
                assert "healthcheck" in services[target], f"{name} waits on {target}'s health"
            if "profiles" not in spec:
                assert "profiles" not in services[target], f"{name} needs a profiled {target}"


def test_long_running_services_have_health_checks(services: dict[str, dict[str, Any]]) -> None:
    """Every service but the one-shot migrate has a health check and restarts; migrate not."""
    for name, spec in services.items():
        if name in ONE_SHOT:
            assert spec.get("restart") == "no", f"{name} runs once"
            assert "healthcheck" not in spec
            continue
        check = spec.get("healthcheck", {})
        test = check.get("test")
        assert isinstance(test, list), f"{name}: no health check"
        assert test[0] in ("CMD", "CMD-SHELL"), f"{name}: health check {test}"
        assert not check.get("disable"), f"{name}: health check disabled"
        assert spec.get("restart") == "unless-stopped", f"{name} should restart"


def test_ingest_health_check_asks_readyz_on_the_health_port(
    services: dict[str, dict[str, Any]],
) -> None:
    """Ingest's health check asks /readyz on FLEETWATCH_HEALTH_PORT, which it publishes."""
    ingest = services["ingest"]
    environment = _environment(ingest)
    port = environment["FLEETWATCH_HEALTH_PORT"]
    assert environment["FLEETWATCH_HEALTH_HOST"] == "0.0.0.0"
    assert ingest["ports"] == [f"127.0.0.1:{port}:{port}"]
    probe = " ".join(ingest["healthcheck"]["test"])
    assert "FLEETWATCH_HEALTH_PORT" in probe
    assert "/readyz" in probe


def test_scale_profile_bridges_to_kafka_and_runs_three_workers(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    """The bridge and three workers reach Kafka where it advertises itself and wait for it;
    the workers read Kafka, not the broker; Kafka keeps its data in a volume, publishes no
    port and is formatted with a valid cluster id."""
    kafka = services["kafka"]
    kafka_env = _environment(kafka)
    listener = kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    assert listener.startswith("PLAINTEXT://"), listener
    for name in ("bridge", "ingest-worker"):
        environment = _environment(services[name])
        assert environment["FLEETWATCH_KAFKA_BOOTSTRAP_SERVERS"] == listener.split("://")[1]
        assert services[name]["depends_on"]["kafka"] == {"condition": "service_healthy"}
    worker = services["ingest-worker"]
    assert worker["command"] == ["ingest", "--source", "kafka"]
    assert worker["deploy"]["replicas"] == 3
    assert "ports" not in worker, "replicas cannot share a published port"
    assert "ports" not in kafka, "Kafka takes no credentials: keep it on compose's network"
    volume, read_only = _volume_mounts(kafka)[kafka_env["KAFKA_LOG_DIRS"]]
    assert volume in compose["volumes"], f"{volume} is not a declared volume"
    assert not read_only
    # One node: one replica of the internal topics, or they could never be created.
    for key, value in kafka_env.items():
        if key.endswith(("_REPLICATION_FACTOR", "_MIN_ISR")):
            assert value == "1", f"{key}={value} on a single node"
    cluster_id = kafka_env["CLUSTER_ID"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id), cluster_id
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_published_ports_bind_loopback_by_default(services: dict[str, dict[str, Any]]) -> None:
    """With .env.example's values, every published port listens on 127.0.0.1 only."""
    env = read_env_file()
    for name, spec in services.items():
        for port in spec.get("ports", []):
            address = _resolve(str(port), env).split(":")[0]
            assert address == "127.0.0.1", f"{name} publishes {port} beyond this machine"


def test_env_example_defines_every_variable_compose_needs(compose: dict[str, Any]) -> None:
    """.env.example sets every variable compose needs and no variable compose ignores."""
    used = [found for text in _strings(compose) for found in _interpolations(text)]
    defined = read_env_file()
    required = {found.name for found in used if not found.has_default}
    assert required <= set(defined), f"missing from .env.example: {required - set(defined)}"
    assert set(defined) <= {found.name for found in used}, "unused .env.example variables"
    assert all(defined.values()), "every .env.example variable needs a value"
    for text in _strings(compose):
        _resolve(text, defined)  # compose can interpolate the whole file with them


def test_secrets_come_only_from_env(compose: dict[str, Any]) -> None:
    """Passwords and tokens are interpolated from .env, never written or defaulted in compose."""
    for text in _strings(compose):
        for found in _interpolations(text):
            if SECRET_NAME.search(found.name):
                assert not found.has_default, f"{found.name} must not have a default"
    for name, spec in compose["services"].items():
        for key, value in _environment(spec).items():
            if SECRET_NAME.search(key) and not SECRET_FILE_NAME.search(key):
                assert _interpolations(value), f"{name}: {key} is written in compose.yaml"
            password = DATABASE_PASSWORD_VARIABLES.get(key)
            if password is not None:
                names = [found.name for found in _interpolations(value)]
                assert password in names, f"{name}: {key}'s password not from .env"


def _volume_mounts(spec: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """A service's named-volume mounts: container path -> (volume, read-only)."""
    mounts = {}
    for entry in spec.get("volumes", []):
        assert isinstance(entry, str), "volumes: use the short NAME:PATH[:ro] syntax"
        source, target, *options = entry.split(":")
        if not source.startswith((".", "/")):
            mounts[target] = (source, options == ["ro"])
    return mounts


def _volume_file(spec: dict[str, Any], path: str) -> tuple[str, str, bool]:
    """(volume, path inside it, read-only) of the named volume holding ``path``."""
    for target, (volume, read_only) in _volume_mounts(spec).items():
        if path.startswith(target.rstrip("/") + "/"):
            return volume, path[len(target.rstrip("/")) + 1 :], read_only
    raise AssertionError(f"{path} is in no named volume of the service")


def test_dashboard_reads_with_the_credentials_migrate_makes(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    """The dashboard gets only read-only credentials: the role migrate creates, and the token
    file migrate writes into a volume the dashboard mounts read-only."""
    migrate, dashboard = _environment(services["migrate"]), _environment(services["dashboard"])
    assert not set(SERVICE_CREDENTIALS) & set(dashboard), "the dashboard gets service credentials"
    assert "FLEETWATCH_DASHBOARD_INFLUX_TOKEN" not in dashboard, "the token comes from the file"
    url = "FLEETWATCH_DASHBOARD_DATABASE_URL"
    assert dashboard[url] == migrate[url], "migrate must create the role the dashboard uses"
    actions = "FLEETWATCH_DASHBOARD_ACTIONS_DATABASE_URL"
    assert dashboard[actions] == migrate[actions], "migrate must grant the actions role"
    assert dashboard[actions] != dashboard[url], "reading and acting are two roles"
    env = read_env_file()
    role, owner = (
        _resolve(value, env).split("://")[1].split(":")[0]
        for value in (migrate[url], migrate["FLEETWATCH_DATABASE_URL"])
    )
    assert re.fullmatch(r"[a-z_][a-z0-9_]*", role), f"{role}: not a plain role name"
    assert role != owner, "the read-only role must not be the migrating user"
    setting = "FLEETWATCH_DASHBOARD_INFLUX_TOKEN_FILE"
    written = _volume_file(services["migrate"], migrate[setting])
    read = _volume_file(services["dashboard"], dashboard[setting])
    assert written[:2] == read[:2], "the dashboard must read the file migrate writes"
    assert (written[2], read[2]) == (False, True), "migrate writes it, the dashboard reads it"
    assert written[0] in compose["volumes"], f"{written[0]} is not a declared volume"


def test_env_files_stay_out_of_git_and_images() -> None:
    """.env is gitignored and, like every local cache, kept out of the build context."""
    assert ".env" in (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    ignored = set(DOCKERIGNORE.read_text(encoding="utf-8").split())
    for entry in (".env", ".git", ".venv", "**/__pycache__", ".pytest_cache", ".mypy_cache"):
        assert entry in ignored, f".dockerignore should exclude {entry}"
    assert ENV_EXAMPLE.exists()


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage of the Dockerfile."""

    base: str
    name: str
    instructions: list[tuple[str, str]]  # (INSTRUCTION, arguments)

    def arguments(self, instruction: str) -> list[str]:
        """The arguments of every ``instruction`` of this stage, in order."""
        return [args for name, args in self.instructions if name == instruction]


def _dockerfile_stages() -> list[Stage]:
    """The Dockerfile's stages, with line continuations joined and ARGs of FROM resolved."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, rest = line.strip().partition(" ")
        instruction = instruction.upper()
        if instruction == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip()
        elif instruction == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            stages.append(Stage(base, name, []))
        else:
            assert stages, f"{instruction} before FROM"
            stages[-1].instructions.append((instruction, " ".join(rest.split())))
    return stages


def test_dockerfile_is_multi_stage_on_a_pinned_slim_base() -> None:
    """Every stage starts from the same exact python:3.11.x-slim-bookworm; wheels are built."""
    stages = _dockerfile_stages()
    assert len(stages) >= 2
    assert {stage.base for stage in stages} == {stages[0].base}
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", stages[0].base), stages[0].base
    build = " ".join(stages[0].arguments("RUN"))
    assert "pip wheel" in build


def test_dockerfile_final_stage_runs_wheels_as_non_root_without_build_tools() -> None:
    """The final stage installs wheels only, has no compiler and runs fleetwatch as non-root."""
    final = _dockerfile_stages()[-1]
    runs = " ".join(final.arguments("RUN"))
    for tool in ("apt-get", "build-essential", "gcc", "g++", "clang", "make "):
        assert tool not in runs, f"the final stage installs or runs {tool}"
    assert not any(args.startswith("--from") for args in final.arguments("COPY")), (
        "wheels copied into the final stage stay in a layer: bind-mount them"
    )
    assert "pip install" in runs
    for option in ("--no-cache-dir", "--no-index"):
        assert option in runs, f"pip install needs {option}"
    users = final.arguments("USER")
    assert users, "the final stage needs a USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "USER should be a fixed numeric uid"
    assert int(uid) > 0, "the image must not run as root"
    assert f"--uid {uid}" in runs, "the USER's uid should be the created user's"
    last_user = max(i for i, (name, _) in enumerate(final.instructions) if name == "USER")
    assert all(name != "RUN" for name, _ in final.instructions[last_user:]), "RUN after USER"
    assert final.arguments("WORKDIR")
    assert [json.loads(args) for args in final.arguments("ENTRYPOINT")] == [["fleetwatch"]]
    assert final.arguments("CMD"), "a default command"


def test_mosquitto_password_file_holds_mosquitto_hashes() -> None:
    """Every line is user:$7$... with a 12-byte salt and 64-byte hash; demo logins match."""
    logins = read_password_file()  # raises on any malformed line
    assert set(logins) == {INGEST_USER, SIMULATOR_USER, *DEVICE_USERS}
    for device in DEVICE_USERS:
        assert logins[device].accepts(DEMO_DEVICE_PASSWORD), f"{device}'s demo password"
    assert DEMO_DEVICE_PASSWORD in ENV_EXAMPLE.read_text(encoding="utf-8")


def _acl_rules() -> list[tuple[str | None, str, str, str]]:
    """(user or None, "topic"/"pattern", access, topic) for every ACL rule."""
    rules: list[tuple[str | None, str, str, str]] = []
    user = None
    for number, line in enumerate(MOSQUITTO_ACL.read_text(encoding="utf-8").splitlines(), 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        where = f"acl:{number}: {line!r}"
        if words[0] == "user":
            assert len(words) == 2, where
            user = words[1]
        elif words[0] in ("topic", "pattern"):
            assert len(words) == 3, f"{where}: give the access (read, write, readwrite, deny)"
            assert words[1] in ("read", "write", "readwrite", "deny"), where
            owner = None if words[0] == "pattern" else user
            rules.append((owner, words[0], words[1], words[2]))
        else:
            raise AssertionError(f"{where}: not a user, topic or pattern line")
    return rules


def test_mosquitto_acl_is_well_formed_and_names_known_users() -> None:
    """Every ACL user has a login, topics sit under the default prefix, devices use %u."""
    logins = read_password_file()
    rules = _acl_rules()
    prefix = MqttSettings.model_fields["topic_prefix"].default + "/"
    for owner, kind, access, topic in rules:
        assert owner is None or owner in logins, f"{owner} has no login in passwords"
        if topic.startswith("$SYS/"):
            assert (owner, kind, access) == (None, "topic", "read"), "only anonymous $SYS reads"
            continue
        assert topic.startswith(prefix), f"{topic} is not under {prefix}"
        if kind == "pattern":
            assert topic.startswith(prefix + "%u/"), f"{topic}: a device's own hostname is %u"
    assert (INGEST_USER, "topic", "readwrite", prefix + "#") in rules
    assert {owner for owner, *_ in rules} == {None, INGEST_USER, SIMULATOR_USER}


def _listeners() -> tuple[dict[str, str], list[dict[str, str]]]:
    """mosquitto.conf's global settings, and each listener's own (port, address, ...)."""
    general: dict[str, str] = {}
    listeners: list[dict[str, str]] = []
    for line in MOSQUITTO_CONF.read_text(encoding="utf-8").splitlines():
        words = line.split(maxsplit=1)
        if not words or words[0].startswith("#"):
            continue
        key, value = words[0], words[1] if len(words) > 1 else ""
        if key == "listener":
            port, _, address = value.partition(" ")
            listeners.append({"port": port, "address": address})
        elif key in ("allow_anonymous", "password_file", "acl_file") and listeners:
            listeners[-1][key] = value
        else:
            general[key] = value
    return general, listeners


def test_mosquitto_conf_requires_logins_keeps_sessions_and_bounds_inflight(
    services: dict[str, dict[str, Any]],
) -> None:
    """Reachable listeners need a login and the ACL; persistence on; in-flight window bounded."""
    general, listeners = _listeners()
    assert general.get("per_listener_settings") == "true"
    assert general.get("persistence") == "true"
    assert int(general["max_queued_messages"]) >= 100_000
    assert 0 < int(general["max_inflight_messages"]) <= 10_000
    assert any(listener["port"] == "1883" for listener in listeners)
    for listener in listeners:
        assert listener.get("acl_file") == "/mosquitto/config/acl", listener
        if listener.get("allow_anonymous") == "true":
            assert listener["address"] == "127.0.0.1", f"anonymous beyond loopback: {listener}"
        else:
            assert listener.get("allow_anonymous") == "false", listener
            assert listener.get("password_file") == "/mosquitto/config/passwords", listener
    for listener in listeners:
        for key in ("password_file", "acl_file"):
            if key in listener:
                name = listener[key].removeprefix("/mosquitto/config/")
                assert (MOSQUITTO_DIR / name).is_file(), f"{key} {name} missing"
    mosquitto = services["mosquitto"]
    assert "./deploy/mosquitto:/mosquitto/config:ro" in mosquitto["volumes"]
    probe = mosquitto["healthcheck"]["test"]
    anonymous = [x["port"] for x in listeners if x.get("allow_anonymous") == "true"]
    assert anonymous == [probe[probe.index("-p") + 1]], "health check: use the loopback listener"
