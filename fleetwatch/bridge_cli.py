"""``fleetwatch bridge``: one MQTT broker's device messages onto the Kafka topic."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from fleetwatch.running import run_until_signalled
from fleetwatch.settings import IngestSettings, KafkaSettings, MqttSettings, load

logger = logging.getLogger(__name__)


def register(sub: Any) -> None:  # noqa: ANN401 - argparse's private subparsers type
    """Add the ``bridge`` command to the top-level parser."""
    bridge = sub.add_parser(
        "bridge",
        help="forward one MQTT broker's device messages to Kafka, for ingest workers "
        "(fleetwatch ingest --source kafka)",
        description="Holds a persistent QoS 1 session with the broker (FLEETWATCH_MQTT_*) and "
        "writes every message to the Kafka topic (FLEETWATCH_KAFKA_*) in its device's "
        "partition, acknowledging it to the broker once Kafka has it. Run one per broker.",
    )
    bridge.add_argument(
        "--client-id",
        default="fleetwatch-bridge",
        help="MQTT client id; fixed, so the broker keeps the session (one per bridge)",
    )
    bridge.add_argument(
        "--max-pending",
        type=int,
        default=50_000,
        help="messages waiting for Kafka before the bridge stops reading from the broker",
    )
    bridge.set_defaults(handler=_bridge)


def _bridge(args: argparse.Namespace) -> int:
    from ingest.bridge import Bridge  # noqa: PLC0415 - the Kafka client loads a C library
    from ingest.health import HealthPortError  # noqa: PLC0415

    settings = load(IngestSettings)  # the health endpoints' address, as ingest's
    bridge = Bridge(
        load(MqttSettings),
        load(KafkaSettings),
        client_id=args.client_id,
        max_pending=args.max_pending,
        health=(settings.health_host, settings.health_port) if settings.health_port else None,
    )

    try:
        run_until_signalled(bridge.run)
    except HealthPortError as exc:
        logger.error("%s", exc)
        return 2
    except RuntimeError as exc:
        logger.error("bridge stopped: %s", exc)
        return 1
    logger.info("bridge stopped")
    return 0
